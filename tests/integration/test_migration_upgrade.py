"""Users already run kafkaguard: upgrading from the previous migration head keeps every row and every
component works on the old rows (DESIGN.md, "Compatibility")."""

from __future__ import annotations

import json
import uuid

import psycopg

from kafkaguard.consumer import Applier, restore_key
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db import migrate
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.topics import topic_for
from tests.integration import consumer_app as app
from tests.integration.kafka_helpers import consume_all
from tests.integration.relay_helpers import relay_thread, wait_until

PREVIOUS_HEAD = "0001_initial"


def _old_rows(
    conn: psycopg.Connection[tuple[object, ...]], group: str, aggregate: str, applied: Event, parked: Event
) -> None:
    """Rows as 0001_initial's code wrote them: no raw_headers, no content_hash, varchar columns."""
    conn.execute(
        "INSERT INTO outbox (aggregatetype, aggregateid, type, payload, headers)"
        " VALUES (%s, 'old-key', 'upgrade.happened', '{\"n\": 1}', '{\"traceparent\": \"00-abc\"}')",
        (aggregate,),
    )
    conn.execute(
        'INSERT INTO kafka_inbox (consumer_group, event_id, type, key, topic, partition, "offset")'
        " VALUES (%s, %s, %s, %s, 't', 0, 1)",
        (group, applied.event_id, applied.type, applied.key),
    )
    conn.execute(
        'INSERT INTO kafka_listener_dead_letters (consumer_group, topic, partition, "offset", key, raw_key,'
        " headers, raw_value, event_id, type, reason, status, attempts)"
        " VALUES (%s, 't', 0, 2, %s, %s, %s, %s, %s, %s, 'handler_error', 'pending', 1)",
        (
            group,
            parked.key,
            parked.key.encode(),
            json.dumps({k: v.decode() for k, v in parked.kafka_headers()}),
            parked.payload_bytes(),
            parked.event_id,
            parked.type,
        ),
    )
    conn.execute(
        "INSERT INTO kafka_publisher_dead_letters (event_id, key, type, aggregate_type, topic, payload,"
        " occurred_at, source) VALUES (%s, 'pk', 'upgrade.failed', 'upgrade', 'outbox.event.upgrade', '{}', now(),"
        " 'direct')",
        (uuid.uuid4(),),
    )


def test_upgrade_from_the_previous_head_keeps_rows_and_components_work(
    kafka_bootstrap: str, database: TestDatabase
) -> None:
    db = database
    group = f"g-{uuid.uuid4().hex[:6]}"
    aggregate = f"upgrade{uuid.uuid4().hex[:6]}"  # a topic of its own on a shared broker
    applied = Event(type="test.applied", key="old-applied", payload={"seq": 0})
    parked = Event(type="test.applied", key="old-parked", payload={"seq": 0})
    migrate.upgrade(db.server.url(), schema=db.schema, revision=PREVIOUS_HEAD)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        _old_rows(conn, group, aggregate, applied, parked)
    migrate.upgrade(db.server.url(), schema=db.schema)

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM kafka_inbox),"
            " (SELECT count(*) FROM kafka_listener_dead_letters), (SELECT count(*) FROM kafka_publisher_dead_letters)"
        ).fetchone()
        assert counts == (1, 1, 1, 1)
        assert conn.execute("SELECT shard IS NOT NULL FROM outbox").fetchone() == (True,)
    app.create_tables(db.conninfo)

    # The old outbox row is relayed (its shard column was rebuilt by the upgrade).
    topic = topic_for(aggregate)
    with relay_thread(db, kafka_bootstrap):
        wait_until(lambda: _count(db, "SELECT count(*) FROM outbox") == 0, 60, "the old outbox row relayed")
    (msg,) = consume_all(kafka_bootstrap, topic, 1, timeout=30)
    assert msg.key() == b"old-key" and dict(msg.headers() or [])["traceparent"] == b"00-abc"

    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        applier = Applier(engine, app.registry, ConsumerSettings(group_id=group))
        # An inbox row without a content hash still makes a redelivery a duplicate.
        k = applied.key.encode()
        again = Record("t", 0, 1, k, applied.payload_bytes(), list(applied.kafka_headers()))
        assert applier.process(again) is Outcome.DUPLICATE
        # The old dead letter (headers only as JSON) blocks its key and is restored from its JSON headers.
        later = Event(type="test.applied", key=parked.key, payload={"seq": 1})
        assert (
            applier.process(Record("t", 0, 3, later.key.encode(), later.payload_bytes(), later.kafka_headers()))
            is Outcome.PARKED
        )
        result = restore_key(engine, app.registry, group, parked.key)
        assert result.failed_id is None and len(result.restored) == 2
    finally:
        engine.dispose()
    seqs = [r[0] for r in _rows(db, "SELECT seq FROM effects WHERE key = 'old-parked' ORDER BY id")]
    assert seqs == [0, 1]


def _count(db: TestDatabase, sql: str) -> int:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _rows(db: TestDatabase, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(db.conninfo) as conn:
        return list(conn.execute(sql).fetchall())
