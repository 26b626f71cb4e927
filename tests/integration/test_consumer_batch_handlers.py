"""Batch handlers (``register_batch``) on the real Kafka and PostgreSQL: batch mode calls them once
per run of new events, and the per-event guarantees hold — dedupe, a broken key dead-lettered and
its later events parked without poisoning the chunk, restore through the same handler."""

from __future__ import annotations

import dataclasses

import psycopg

from kafkaguard.consumer import restore_key
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import rows, scalar, start_worker, wait_until


def test_batch_handler_in_batch_mode_keeps_every_guarantee_and_restores(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('k3')")
    topic = topics("batch-handlers", partitions=2)
    # Every 7th event has the per-event type, so runs of the batch type are cut (offset order across types).
    events = [
        dataclasses.replace(e, type="test.other") if i % 7 == 0 else e
        for i, e in enumerate(app.make_events(2000, keys=20))
    ]
    sent = app.produce(kafka_bootstrap, topic, events, twice=set(range(0, 2000, 20)))  # key k0: never broken
    group = app.new_group()
    calls: list[int] = []
    registry = app.batch_registry(calls)
    settings = ConsumerSettings(group_id=group, topics=(topic,), batch_size=200)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, registry, settings)
    try:
        wait_until(lambda: sum(w.worker.stats.values()) >= sent, 90, "every message has an outcome")
    finally:
        w.stop()

    k3 = [e for e in events if e.key == "k3"]
    applied = 2000 - len(k3)
    assert w.worker.stats["applied"] == applied
    assert w.worker.stats["duplicate"] == 100
    assert w.worker.stats["dead_lettered"] == 1 and w.worker.stats["parked"] == len(k3) - 1
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == applied
    assert scalar(db.conninfo, "SELECT count(DISTINCT event_id) FROM effects") == applied
    # The batch handler ran on whole runs, not once per event (calls of a chunk that then fell back
    # were rolled back and are counted here too; the effects table above counts what committed).
    assert max(calls) > 1
    assert sum(calls) >= sum(1 for e in events if e.key != "k3" and e.type == "test.applied")
    assert w.worker.batches["applied"] > 0 and w.worker.batches["fell_back"] > 0  # k3's chunks fell back

    # Repair k3; the restore job re-runs the batch handler per dead letter, in order.
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM broken_keys")
    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        result = restore_key(engine, registry, group, "k3")
    finally:
        engine.dispose()
    assert len(result.restored) == len(k3) and result.failed_id is None
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 2000
    per_key = rows(db.conninfo, "SELECT key, array_agg(seq ORDER BY id) FROM effects GROUP BY key")
    assert all(seqs == sorted(seqs) and len(seqs) == 100 for _, seqs in per_key)
