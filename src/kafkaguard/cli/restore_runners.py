"""Build the restore jobs from settings (shared by ``kafkaguard restore`` and ``dead-letters replay``)."""

from __future__ import annotations

from sqlalchemy import Engine, text

from kafkaguard.restore.publisher_job import PublisherRestoreJob, RunReport
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import Store
from kafkaguard.transports.kafka_producer import SyncProducer
from kafkaguard.transports.kafka_topics import TopicRegistry


def publisher_job(settings: KafkaguardSettings, engine: Engine) -> PublisherRestoreJob:
    """The publisher restore job with a producer when the strategy republishes."""
    if settings.restore.publisher_strategy is not PublisherStrategy.REPUBLISH:
        return PublisherRestoreJob(engine, settings.restore)
    producer = SyncProducer(
        settings.bootstrap_servers, timeout=settings.relay.delivery_timeout, overrides=settings.producer
    )
    # Dead letters made while Kafka was down may name a topic that was never created.
    topics = TopicRegistry(
        settings.bootstrap_servers,
        partitions=settings.topics.partitions,
        replication=settings.topics.replication,
        create_missing=settings.topics.create_missing,
        overrides=settings.producer,
    )
    return PublisherRestoreJob(engine, settings.restore, producer=producer, ensure_topic=topics.ensure)


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
