"""Build the restore jobs from settings (shared by ``kafkaguard restore`` and ``dead-letters replay``)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from kafkaguard.restore.publisher_job import PublisherRestoreJob, RunReport
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import Store
from kafkaguard.transports.kafka_producer import SyncProducer


def publisher_job(settings: KafkaguardSettings, engine: Engine) -> PublisherRestoreJob:
    """The publisher restore job with a producer when the strategy republishes."""
    producer = None
    if settings.restore.publisher_strategy is PublisherStrategy.REPUBLISH:
        producer = SyncProducer(
            settings.bootstrap_servers, timeout=settings.relay.delivery_timeout, overrides=settings.producer
        )
    return PublisherRestoreJob(engine, settings.restore, producer=producer)


def restore_records(
    settings: KafkaguardSettings, engine: Engine, store: Store, ids: list[int], *, app: str | None
) -> int:
    """Restore the keys of records ``ids`` now, heads first; return how many of ``ids`` were restored."""
    sql = text(f"SELECT DISTINCT key FROM {store.table} WHERE id = ANY(:ids)")  # noqa: S608 - table from an enum
    with engine.connect() as conn:
        keys = [r[0] for r in conn.execute(sql, {"ids": ids})]
    report = RunReport()
    if store is Store.PUBLISHER:
        job = publisher_job(settings, engine)
        for key in keys:
            report.add(job.process_key(key))
    else:
        from kafkaguard.cli.listener_restore import listener_process_keys

        report.add(listener_process_keys(settings, engine, keys, app=app))
    return len(set(report.restored_ids) & set(ids))
