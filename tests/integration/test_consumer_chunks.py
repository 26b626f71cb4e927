"""Chunk mode — the default settings — on the real Kafka and PostgreSQL with a per-event handler:
bad messages inside chunks are isolated (dead-lettered alone, their key's later events parked), the
rest applied exactly once in per-key order, and the partition's end committed; ``async def`` and
sync handlers in one async chunk transaction."""

from __future__ import annotations

import dataclasses
import threading

import psycopg
from confluent_kafka import Producer

from kafkaguard.consumer.runner import build_worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import async_app
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import rows, scalar, start_worker, wait_until
from tests.integration.test_consumer_totality import _committed


def test_default_settings_isolate_bad_messages_inside_chunks_and_apply_the_rest_once_in_order(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('broken')")
    topic = topics("chunks", partitions=1)
    good = app.make_events(600, keys=10)
    forged = dataclasses.replace(good[10], payload={"seq": 999, "i": -1})  # event 10's id, other content
    broken = [Event(type="test.applied", key="broken", payload={"seq": s}) for s in range(3)]
    messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    for i, e in enumerate(good):
        messages.append((e.key.encode(), e.payload_bytes(), e.kafka_headers()))
        if i == 20:  # a duplicate right behind its first copy
            messages.append((e.key.encode(), e.payload_bytes(), e.kafka_headers()))
        if i == 50:
            messages.append((b"bad-a", b"\xff\xfe not utf-8", e.kafka_headers()))
        if i in (100, 130, 160):
            b = broken[(i - 100) // 30]
            messages.append((b.key.encode(), b.payload_bytes(), b.kafka_headers()))
        if i == 595:  # after the last event of k0: its id-conflict dead letter blocks k0 from here on
            messages.append((forged.key.encode(), forged.payload_bytes(), forged.kafka_headers()))
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    for key, value, headers in messages:
        producer.produce(topic, key=key, value=value, headers=headers)
    assert producer.flush(30) == 0

    group = app.new_group()
    settings = ConsumerSettings(
        group_id=group, topics=(topic,), retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0.01))
    )
    assert settings.batch_size == 500  # the default: chunk mode
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    try:
        wait_until(lambda: sum(w.worker.stats.values()) >= len(messages), 90, "every message has an outcome")
        wait_until(lambda: _committed(kafka_bootstrap, group, topic) == len(messages), 60, "the end committed")
    finally:
        w.stop()

    assert w.worker.stats == {"applied": 600, "duplicate": 1, "dead_lettered": 2, "parked": 2, "id_conflict": 1}
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 600
    assert scalar(db.conninfo, "SELECT count(DISTINCT event_id) FROM effects") == 600
    per_key = rows(db.conninfo, "SELECT key, array_agg(seq ORDER BY id) FROM effects GROUP BY key")
    assert len(per_key) == 10 and all(seqs == list(range(60)) for _, seqs in per_key)  # per-key order
    dead = rows(
        db.conninfo,
        "SELECT key, reason, status, attempts FROM kafka_listener_dead_letters WHERE consumer_group = %(g)s "
        "ORDER BY id",
        {"g": group},
    )
    assert sorted(dead) == sorted(
        [
            ("bad-a", "undecodable", "pending", 1),
            ("broken", "handler_error", "pending", 2),  # retried alone with the group's policy
            ("broken", "parked", "parked", 0),
            ("broken", "parked", "parked", 0),
            ("k0", "id_conflict", "pending", 1),
        ]
    )
    # Most messages went in chunks; only the three failing ones took the per-event path.
    assert w.worker.batches["applied"] >= 1 and w.worker.batches["isolated"] <= 3


def test_async_and_sync_handlers_of_one_key_share_one_async_chunk_transaction(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('broken')")
    topic, group = topics("async-chunks", partitions=1), app.new_group()
    events = [
        dataclasses.replace(e, type="test.other") if i % 3 == 0 else e  # sync handler every third event
        for i, e in enumerate(app.make_events(300, keys=5))
    ]
    events.insert(150, Event(type="test.applied", key="broken", payload={"seq": 0}))  # the async handler raises
    app.produce(kafka_bootstrap, topic, events)
    settings = KafkaguardSettings(
        bootstrap_servers=kafka_bootstrap,
        database_url=db.server.url(driver="postgresql+asyncpg"),
        db_schema=db.schema,
        consumer=ConsumerSettings(
            group_id=group, topics=(topic,), retry=RetryPolicy(max_attempts=1, backoff=Fixed(seconds=0))
        ),
        consumer_client={"session.timeout.ms": 10000},
    )
    worker = build_worker(settings, async_app.registry)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: sum(worker.stats.values()) >= len(events), 90, "every message has an outcome")
    finally:
        worker.stop()
        thread.join(30)
    assert worker.stats == {"applied": 300, "dead_lettered": 1}
    assert worker.batches["applied"] >= 1 and worker.batches["isolated"] == 1
    assert scalar(db.conninfo, "SELECT count(DISTINCT event_id) FROM effects") == 300
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 300
    per_key = rows(db.conninfo, "SELECT key, array_agg(seq ORDER BY id) FROM effects GROUP BY key")
    assert len(per_key) == 5 and all(seqs == list(range(60)) for _, seqs in per_key)
