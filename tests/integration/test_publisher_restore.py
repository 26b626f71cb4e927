"""The publisher restore job on the real broker and database: per-key order, outcomes, concurrency, handoff."""

import os
import subprocess
import sys
import threading

from sqlalchemy import Engine, text

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.publisher_job import PublisherRestoreJob, record_event
from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
from kafkaguard.stores.inbox_postgres import PostgresConsumerStore
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.integration.dead_letter_rows import insert_publisher_dead_letter
from tests.integration.kafka_helpers import consume_all


def engine_of(db: TestDatabase) -> Engine:
    return sync_engine(db.server.url(), schema=db.schema)


def fill(engine: Engine, topic: str, keys: int, per_key: int) -> dict[str, list[str]]:
    """Interleave keys so that id order differs from key order; return each key's event ids in id order."""
    expected: dict[str, list[str]] = {}
    with engine.begin() as conn:
        for n in range(per_key):
            for k in range(keys):
                event = Event(type="order.created", key=f"order-{k}", payload={"n": n})
                insert_publisher_dead_letter(conn, event, topic)
                expected.setdefault(event.key, []).append(str(event.event_id))
    return expected


def test_republish_in_key_order_and_only_once(
    migrated_database: TestDatabase, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    topic = topics("orders")
    engine = engine_of(migrated_database)
    expected = fill(engine, topic, keys=5, per_key=8)
    job = PublisherRestoreJob(engine, RestoreSettings(), producer=DeliveryProducer(kafka_bootstrap, message_timeout=20))

    # Two runs started together: the key locks keep each record to one run.
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(job.run_once())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.restored for r in reports) == 40
    assert job.run_once().restored == 0  # nothing left

    messages = consume_all(kafka_bootstrap, topic, 40, timeout=60)
    assert len(messages) == 40  # republished exactly once each
    got: dict[str, list[str]] = {}
    for m in messages:
        got.setdefault(m.key().decode(), []).append(dict(m.headers())["event_id"].decode())
    assert got == expected
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, restored_by, attempts FROM kafka_publisher_dead_letters")).all()
    assert {tuple(r) for r in rows} == {("restored", "republish", 1)}


def test_keeps_failing_then_failed_with_full_history_and_replay(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    engine = engine_of(migrated_database)
    with engine.begin() as conn:
        record = insert_publisher_dead_letter(
            conn, Event(type="order.created", key="k", payload={}), "topic-that-does-not-exist"
        )
    settings = RestoreSettings(policy=RetryPolicy(max_attempts=3, backoff=Fixed(seconds=0)))
    job = PublisherRestoreJob(engine, settings, producer=DeliveryProducer(kafka_bootstrap, message_timeout=1))
    outcomes = [job.run_once() for _ in range(3)]
    assert [(o.retried, o.failed) for o in outcomes] == [(1, 0), (1, 0), (0, 1)]
    assert job.run_once().failed == 0  # failed records wait for an operator
    with engine.connect() as conn:
        status, attempts, history, err = conn.execute(
            text("SELECT status, attempts, history, last_error_class FROM kafka_publisher_dead_letters")
        ).one()
    assert (status, attempts) == ("failed", 3)
    assert [h["attempts"] for h in history] == [1, 2, 3]
    assert all(h["what"] == "restore_failed" for h in history)
    assert err == "kafkaguard.errors.DeliveryTimeoutError"

    env = {**os.environ, "KAFKAGUARD_DATABASE_URL": migrated_database.server.url()}
    cmd = [sys.executable, "-m", "kafkaguard", "dead-letters", "replay", "--store", "publisher", "--id", str(record)]
    out = subprocess.run(
        [*cmd, "--reset-only", "--schema", migrated_database.schema], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        status, attempts, history = conn.execute(
            text("SELECT status, attempts, history FROM kafka_publisher_dead_letters")
        ).one()
    assert (status, attempts) == ("pending", 0)
    assert history[-1]["what"] == "replay"


def test_handoff_turns_publisher_dead_letters_into_listener_ones(migrated_database: TestDatabase) -> None:
    engine = engine_of(migrated_database)
    expected = fill(engine, "outbox.event.order", keys=2, per_key=3)
    settings = RestoreSettings(publisher_strategy=PublisherStrategy.HANDOFF, handoff_group="activity")
    report = PublisherRestoreJob(engine, settings).run_once()  # no producer: Kafka is not needed
    assert report.restored == 6
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT key, event_id::text, status, reason FROM kafka_listener_dead_letters ORDER BY id")
        ).all()
        pub = conn.execute(text("SELECT DISTINCT status, restored_by FROM kafka_publisher_dead_letters")).all()
    got: dict[str, list[str]] = {}
    for key, event_id, status, reason in rows:
        assert (status, reason) == ("pending", "handoff")
        got.setdefault(key, []).append(event_id)
    assert got == expected
    assert pub == [("restored", "handoff")]


def test_handoff_through_a_listener_store_writes_json_columns_and_repeats_harmlessly(
    migrated_database: TestDatabase,
) -> None:
    engine = engine_of(migrated_database)
    fill(engine, "outbox.event.order", keys=1, per_key=2)
    settings = RestoreSettings(publisher_strategy=PublisherStrategy.HANDOFF, handoff_group="activity")
    job = PublisherRestoreJob(engine, settings, listener_store=PostgresConsumerStore(engine))
    assert job.run_once().restored == 2
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                'SELECT partition, "offset", jsonb_typeof(headers), jsonb_typeof(history),'
                " history->0->>'what', (history->0->>'publisher_dead_letter')::int, raw_headers IS NULL"
                " FROM kafka_listener_dead_letters ORDER BY id"
            )
        ).all()
        first = conn.execute(text("SELECT * FROM kafka_publisher_dead_letters ORDER BY id LIMIT 1")).mappings().one()
    ids = [-offset for _, offset, *_ in rows]
    assert [tuple(r) for r in rows] == [(-1, -i, "object", "array", "handoff", i, True) for i in ids]
    # A second handoff of a record (a crash between the two writes) inserts nothing: same position.
    job.hand_off(None, dict(first), record_event(dict(first)))  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM kafka_listener_dead_letters")).scalar() == 2
