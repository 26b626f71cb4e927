"""Debezium as the relay (issue 8; MariaDB: issue 18), on the real broker, the real databases and Kafka Connect.

- every committed event reaches Kafka in per-key commit order, none from rolled-back
  transactions, with Connect killed -9 and restarted mid-run (outbox written insert-then-delete),
  on PostgreSQL (logical decoding) and on MariaDB (the binlog);
- a stream produced half by kafkaguard's relay and half by Debezium is applied exactly once, in
  per-key order, by one consumer: the two relays' messages are indistinguishable downstream.
"""

from __future__ import annotations

import random
import threading
import uuid

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.relay.debezium import DebeziumOptions, connector_config
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing import stacks
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase
from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics
from tests.integration import consumer_app
from tests.integration.consumer_helpers import rows, start_worker
from tests.integration.relay_helpers import TopicReader, relay_thread, scalar, wait_until

KEYS = 40
PER_KEY = 50
WRITERS = 4


def source_url(db: TestDatabase | TestMariaDatabase) -> str:
    """The URL Debezium connects with: PostgreSQL's server URL (the schema apart), MariaDB's database URL."""
    return db.url if isinstance(db, TestMariaDatabase) else db.server.url()


def test_debezium_relays_every_committed_event_in_key_order_through_a_connect_kill(
    store_database: TestDatabase | TestMariaDatabase, kafka_bootstrap: str
) -> None:
    db = store_database
    conninfo = db.server.conninfo() if isinstance(db, TestDatabase) else None
    agg = f"dbz{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    engine = sync_engine(db.url)
    committed: dict[str, list[str]] = {}
    rolled_back: set[str] = set()
    lock = threading.Lock()
    written = [0]
    trace_of: dict[str, str | None] = {}

    def writer(w: int) -> None:
        rng = random.Random(w)
        keys = [f"k{k}" for k in range(w, KEYS, WRITERS)]
        for n in range(PER_KEY):
            for key in keys:
                # Half the events carry a trace context: Debezium must carry it as kafkaguard's relay does.
                tp = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64) | 1:016x}-01" if n % 2 == 0 else None
                headers = {"traceparent": tp} if tp else {}
                event = Event(type="test.applied", key=key, payload={"seq": n}, aggregate_type=agg, headers=headers)
                trace_of[str(event.event_id)] = tp
                if rng.random() < 0.05:  # rolled back: must never reach Kafka
                    session = Session(engine)
                    session.begin()
                    add_events(session, [Event(type="test.ghost", key=key, payload={}, aggregate_type=agg)],
                               delete_after_insert=True)  # fmt: skip
                    session.rollback()
                    session.close()
                    with lock:
                        rolled_back.add("ghost")
                with Session(engine) as session, session.begin():
                    add_events(session, [event], delete_after_insert=True)
                with lock:
                    committed.setdefault(key, []).append(str(event.event_id))
                    written[0] += 1

    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with stacks.debezium_relay(kafka_bootstrap, source_url(db), db.schema, conninfo) as connect:
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for t in threads:
                t.start()
            wait_until(lambda: written[0] >= KEYS * PER_KEY // 3, 120, "a third of the events written")
            connect.kill()  # mid-run: Connect dies with records in flight and offsets unflushed
            connect.start(
                connector_config(DebeziumOptions(source_url(db), schema=db.schema, bootstrap=kafka_bootstrap))
            )
            for t in threads:
                t.join()
            total = KEYS * PER_KEY
            wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= total)[1], 180, "every event on Kafka")
            reader.poll_for(1.0)
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    finally:
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])
    assert left == 0  # insert-then-delete kept the table empty
    types = {m.headers() and dict(m.headers())["type"].decode() for m in reader.messages}
    assert types == {"test.applied"}, "an event of a rolled-back transaction was relayed"
    assert reader.per_key_first_seen() == committed, "per-key commit order broken or an event lost"
    first = reader.messages[0]
    assert {k for k, _ in first.headers()} >= {"event_id", "type", "aggregate_type", "occurred_at", "schema_version"}
    assert rolled_back  # the workload did roll some transactions back
    carried = {}
    for m in reader.messages:
        h = dict(m.headers())
        carried[h["event_id"].decode()] = h["traceparent"].decode() if h.get("traceparent") is not None else None
    assert carried == trace_of, "a trace context was lost or invented on the way through Debezium"
    assert sum(v is not None for v in carried.values()) >= KEYS * PER_KEY // 2 - KEYS


def test_stream_half_from_kafkaguard_half_from_debezium_is_applied_exactly_once(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    agg = f"mix{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    engine = sync_engine(db.url)
    keys, half = 10, 15

    def write(seqs: range, *, debezium: bool) -> None:
        for n in seqs:
            with Session(engine) as session, session.begin():
                add_events(
                    session,
                    [
                        Event(type="test.applied", key=f"k{k}", payload={"seq": n}, aggregate_type=agg)
                        for k in range(keys)
                    ],
                    delete_after_insert=debezium,
                )

    try:
        with relay_thread(db, kafka_bootstrap):
            write(range(half), debezium=False)
            wait_until(lambda: scalar(db, "SELECT count(*) FROM outbox") == 0, 60, "kafkaguard's relay to drain")
        with stacks.debezium_relay(kafka_bootstrap, db.server.url(), db.schema, db.server.conninfo()):
            write(range(half, 2 * half), debezium=True)
            group = consumer_app.new_group()
            worker = start_worker(
                kafka_bootstrap, db.server.url(), db.schema, consumer_app.registry,
                ConsumerSettings(group_id=group, topics=(topic,)),
            )  # fmt: skip
            try:
                wait_until(
                    lambda: scalar(db, "SELECT count(*) FROM effects") >= keys * 2 * half, 120, "every event applied"
                )
            finally:
                worker.stop()
    finally:
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])
    applied = rows(db.conninfo, "SELECT key, seq FROM effects ORDER BY id")
    assert len(applied) == keys * 2 * half  # exactly once: no double application
    by_key: dict[str, list[int]] = {}
    for key, seq in applied:
        by_key.setdefault(key, []).append(seq)
    assert by_key == {f"k{k}": list(range(2 * half)) for k in range(keys)}  # both halves, in order
    with psycopg.connect(db.conninfo) as conn:
        dead = conn.execute("SELECT count(*) FROM kafka_listener_dead_letters").fetchone()
    assert dead == (0,)  # Debezium's messages decode exactly like kafkaguard's
