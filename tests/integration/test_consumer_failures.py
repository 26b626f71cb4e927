"""Bad input and failing handlers on the real Kafka and PostgreSQL: dead letters, parking, restore, DLQ topic."""

from __future__ import annotations

import json

import psycopg
from confluent_kafka import Producer

from kafkaguard import headers as H
from kafkaguard.consumer import restore_key
from kafkaguard.consumer.dlq import DlqCopier
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Exponential
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import rows, scalar, start_worker, wait_until
from tests.integration.kafka_helpers import consume_all

FAST_RETRY = RetryPolicy(max_attempts=3, backoff=Exponential(base=0.05, factor=2, max_seconds=0.2, jitter=0))


def good(key: str, seq: int = 0) -> Event:
    return Event(type="test.applied", key=key, payload={"seq": seq})


def test_each_bad_input_is_dead_lettered_and_the_partition_moves(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("bad", partitions=1)
    dlq = topics("bad.dlq", partitions=1)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('always-fails')")
    base = good("x")
    hdrs = base.kafka_headers()
    no_event_id = [(k, v) for k, v in hdrs if k != H.EVENT_ID]
    unknown = Event(type="test.nobody-handles-this", key="unknown", payload={}).kafka_headers()
    bad_messages = {
        "undecodable": (b"undecodable", b"\xff\xfe\xfd", hdrs),
        "not_json": (b"not-json", b"not json {", good("not-json").kafka_headers()),
        "wrong_shape": (b"wrong-shape", b"[1, 2, 3]", good("wrong-shape").kafka_headers()),
        "unknown_type": (b"unknown", b"{}", unknown),
        "missing_header": (b"missing-header", base.payload_bytes(), no_event_id),
        "oversized": (
            b"oversized",
            json.dumps({"seq": 0, "pad": "x" * 5000}).encode(),
            good("oversized").kafka_headers(),
        ),
        "missing_key": (None, base.payload_bytes(), good("nokey").kafka_headers()),
        "handler_error": (b"always-fails", good("always-fails").payload_bytes(), good("always-fails").kafka_headers()),
    }
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for key, value, headers in bad_messages.values():
        producer.produce(topic, key=key, value=value, headers=headers)
    after = good("after-the-bad-ones", 0)
    producer.produce(topic, key=after.key.encode(), value=after.payload_bytes(), headers=after.kafka_headers())
    assert producer.flush(30) == 0

    group = app.new_group()
    settings = ConsumerSettings(
        group_id=group, topics=(topic,), max_payload_bytes=4000, retry=FAST_RETRY, dlq_topic=True
    )
    w = start_worker(
        kafka_bootstrap, db.server.url(), db.schema, app.registry, settings,
        on_dead_letter=DlqCopier(kafka_bootstrap),
    )  # fmt: skip
    try:
        wait_until(lambda: scalar(db.conninfo, "SELECT count(*) FROM effects") == 1, 60, "the good event after")
        assert w.thread.is_alive()
    finally:
        w.stop()
    stored = dict(rows(db.conninfo, "SELECT reason, count(*) FROM kafka_listener_dead_letters GROUP BY reason"))
    assert stored == {reason: 1 for reason in bad_messages}
    full = rows(
        db.conninfo,
        'SELECT topic, partition, "offset", raw_value, error_class, stack, attempts, consumer_group, created_at, '
        "status FROM kafka_listener_dead_letters WHERE reason = 'handler_error'",
    )
    t, p, off, raw, err, stack, attempts, g, created, status = full[0]
    assert created is not None
    assert (t, p, off, g, status) == (topic, 0, 7, group, "pending")
    assert raw == good("always-fails").payload_bytes()
    assert err == "tests.integration.consumer_app.BrokenKeyError" and "BrokenKeyError" in stack
    assert attempts == 3  # RuntimeError is retriable by default: 3 attempts, then the dead letter
    assert scalar(db.conninfo, "SELECT key FROM effects") == "after-the-bad-ones"
    # DLQ topic copies carry the original position and the exception.
    copies = consume_all(kafka_bootstrap, dlq, len(bad_messages), timeout=30)
    assert len(copies) == len(bad_messages)
    h = dict(copies[0].headers() or [])
    assert h[H.DLQ_ORIGINAL_TOPIC] == topic.encode() and h[H.DLQ_ORIGINAL_OFFSET] == b"0"
    assert h[H.DLQ_REASON] == b"undecodable" and h[H.DLQ_EXCEPTION_CLASS] == b"kafkaguard.errors.DecodeError"


def test_failing_key_is_parked_others_flow_and_restore_applies_in_order(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("park", partitions=2)
    events = app.make_events(50, keys=5)  # k0..k4, seq 0..9 each
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('k2')")
    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), retry=FAST_RETRY)
    app.produce(kafka_bootstrap, topic, events)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    try:
        wait_until(
            lambda: scalar(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == 10, 60, "k2's 10 rows"
        )
        wait_until(lambda: scalar(db.conninfo, "SELECT count(*) FROM effects") == 40, 60, "the other keys")
        assert scalar(db.conninfo, "SELECT count(*) FROM effects WHERE key = 'k2'") == 0
        statuses = rows(db.conninfo, "SELECT status, reason FROM kafka_listener_dead_letters ORDER BY id")
        assert statuses == [("pending", "handler_error")] + [("parked", "parked")] * 9

        engine = sync_engine(db.server.url(), schema=db.schema)
        failed = restore_key(engine, app.registry, group, "k2")  # still broken: stops at the head
        assert failed.failed_id is not None and failed.restored == []
        assert scalar(db.conninfo, "SELECT attempts FROM kafka_listener_dead_letters ORDER BY id LIMIT 1") == 4

        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM broken_keys")
        result = restore_key(engine, app.registry, group, "k2", restored_by="test")
        assert len(result.restored) == 10 and result.failed_id is None
        assert result.restored == sorted(result.restored)
        seqs = [s for (s,) in rows(db.conninfo, "SELECT seq FROM effects WHERE key = 'k2' ORDER BY id")]
        assert seqs == list(range(10))
        assert scalar(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters WHERE status <> 'restored'") == 0

        # The key is free again: a new event of k2 is applied directly, after the restored ones.
        app.produce(kafka_bootstrap, topic, [Event(type="test.applied", key="k2", payload={"seq": 10})])
        wait_until(lambda: scalar(db.conninfo, "SELECT max(seq) FROM effects WHERE key = 'k2'") == 10, 30, "k2 seq 10")
        engine.dispose()
    finally:
        w.stop()
    assert scalar(db.conninfo, "SELECT count(*) FROM kafka_inbox WHERE consumer_group = %(g)s", {"g": group}) == 51
