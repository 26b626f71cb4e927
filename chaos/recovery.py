"""Recovery after a chaos run's fault: the restore jobs, run until the system owes nothing.

The publisher restore job republishes dead letters to Kafka (``http``: hands them to the listener
store), the listener restore job re-applies the consumer's dead letters; both run every half second
(dailyfeed runs them every minute) until every committed write is applied, or nothing moved for
``quiet_seconds`` while no work is owed (outbox rows, due dead letters, consumer lag): then the
missing events are lost for good and the run is measured as it is.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, KafkaException, TopicPartition
from sqlalchemy import Engine

from chaos import projection
from chaos.security import client_security
from kafkaguard.db.engine import sync_engine
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.publisher.settings import PublishMode
from kafkaguard.restore.listener_functions import due_keys, restore_key
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
from kafkaguard.transports.kafka_delivery import DeliveryProducer

if TYPE_CHECKING:
    from chaos.run import RunContext

log = logging.getLogger("kafkaguard.chaos")

RESTORE_POLICY = RetryPolicy(max_attempts=50, backoff=Fixed(seconds=1.0))


def lag(ctx: RunContext) -> int:
    """Messages of the run's topics not yet committed by its consumer group (0 for http)."""
    if ctx.mode is PublishMode.HTTP:
        return 0
    client = Consumer({"bootstrap.servers": ctx.bootstrap, "group.id": ctx.group, **client_security()})
    try:
        meta = client.list_topics(timeout=10)
        parts = [
            TopicPartition(t, p) for t in ctx.topics for p in (meta.topics[t].partitions if t in meta.topics else {})
        ]
        total = 0
        for tp in client.committed(parts, timeout=10):
            high = client.get_watermark_offsets(tp, timeout=10)[1]
            total += high - max(tp.offset, 0) if tp.offset >= 0 else high
        return total
    except KafkaException:
        return 1  # cannot tell: count as owed
    finally:
        client.close()


def publisher_restore_job(
    ctx: RunContext, pub: Engine, con: Engine
) -> tuple[PublisherRestoreJob, DeliveryProducer | None]:
    """The publisher restore job of this mode: republish to Kafka, or (http) hand off to the listener store."""
    if ctx.mode is PublishMode.HTTP:
        settings = RestoreSettings(policy=RESTORE_POLICY, publisher_strategy=PublisherStrategy.HANDOFF,
                                   handoff_group=ctx.group)  # fmt: skip
        return PublisherRestoreJob(pub, settings, listener_engine=con), None
    producer = DeliveryProducer(ctx.bootstrap, message_timeout=10, overrides=client_security())
    return PublisherRestoreJob(pub, RestoreSettings(policy=RESTORE_POLICY), producer=producer), producer


def run_restore_jobs(ctx: RunContext, job: PublisherRestoreJob, con: Engine) -> None:
    """One run of the publisher and the listener restore jobs (as their CronJobs would)."""
    job.run_once(limit=10_000)
    for group, key in due_keys(con, limit=10_000):
        if group == ctx.group:
            restore_key(con, projection.registry, group, key, restored_by="chaos", policy=RESTORE_POLICY)


def recover(ctx: RunContext) -> float | None:
    """Run the restore jobs until every committed write is applied, or nothing moved for
    ``quiet_seconds`` with no work pending; return seconds from the heal to completeness."""
    if ctx.healed_at is None:
        ctx.healed_at = time.monotonic()
    pub = sync_engine(ctx.db_publisher.url(), schema=ctx.pub_schema)
    con = sync_engine(ctx.db_consumer.url(), schema=ctx.con_schema)
    job, producer = publisher_restore_job(ctx, pub, con)
    wanted = {c.event_id for c in ctx.committed()}
    deadline = time.monotonic() + ctx.profile.recovery_timeout
    last_count, last_change = -1, time.monotonic()
    try:
        while time.monotonic() < deadline:
            try:
                run_restore_jobs(ctx, job, con)
            except Exception as exc:  # noqa: BLE001 - a restore failure is retried next round
                log.warning("restore jobs failed: %s", exc)
            have = {a.event_id for a in ctx.applied()}
            if wanted <= have:
                return time.monotonic() - ctx.healed_at
            if len(have) != last_count:
                last_count, last_change = len(have), time.monotonic()
            elif time.monotonic() - last_change > ctx.profile.quiet_seconds and ctx.pending_work() == 0:
                return None
            time.sleep(0.5)  # the restore jobs' schedule (dailyfeed runs them every minute)
    finally:
        if producer is not None:
            producer.close()
        pub.dispose()
        con.dispose()
    ctx.notes.append(f"recovery timed out after {ctx.profile.recovery_timeout:.0f} s")
    return None
