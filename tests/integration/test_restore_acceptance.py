"""Issue 5's acceptance on the real Kafka and PostgreSQL, through the `kafkaguard restore` CLI.

- a listener dead letter whose handler now succeeds is restored exactly once, with two restore
  runs started together;
- publisher dead letters made while Kafka was down are on Kafka in per-key order after it returns
  and one restore run;
- handoff: with Kafka still down, the listener job applies those events to the consumer's store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import psycopg
from sqlalchemy.orm import Session

from kafkaguard import Event, Publisher, PublishOutcome
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app
from tests.integration.consumer_helpers import REPO, rows, scalar, start_worker, wait_until
from tests.integration.kafka_helpers import consume_all

APP = "tests.integration.consumer_app:registry"


def cli(db: TestDatabase, bootstrap: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),  # this tree's code, not an installed one
        "KAFKAGUARD_DATABASE_URL": db.server.url(),
        "KAFKAGUARD_DB_SCHEMA": db.schema,
        "KAFKAGUARD_BOOTSTRAP_SERVERS": bootstrap,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "kafkaguard", *args], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def test_listener_dead_letters_restored_exactly_once_by_two_concurrent_runs(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    topic = topics("restore")
    group = consumer_app.new_group()
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('k1')")
    events = consumer_app.make_events(30, keys=3)
    consumer_app.produce(kafka_bootstrap, topic, events)
    settings = ConsumerSettings(
        group_id=group, topics=(topic,), retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0.05))
    )
    worker = start_worker(kafka_bootstrap, db.server.url(), db.schema, consumer_app.registry, settings)
    try:
        wait_until(lambda: scalar(db.conninfo, "SELECT count(*) FROM effects") == 20, 60, "k0 and k2 applied")
        wait_until(lambda: scalar(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == 10, 60, "k1 held")
    finally:
        worker.stop()
    statuses = rows(db.conninfo, "SELECT status, count(*) FROM kafka_listener_dead_letters GROUP BY 1 ORDER BY 1")
    assert statuses == [("parked", 9), ("pending", 1)]

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM broken_keys")  # the handler succeeds now
    runs = [cli(db, kafka_bootstrap, "restore", "listener", "--once", "--app", APP, "--group", group) for _ in range(2)]
    outputs = [finish(p) for p in runs]

    assert scalar(db.conninfo, "SELECT count(*) FROM effects WHERE key = 'k1'") == 10  # exactly once
    seqs = [r[0] for r in rows(db.conninfo, "SELECT seq FROM effects WHERE key = 'k1' ORDER BY id")]
    assert seqs == list(range(10))  # in the key's order
    restored = rows(
        db.conninfo,
        "SELECT status, jsonb_array_length(jsonb_path_query_array(history, '$[*] ? (@.what == \"restored\")')) "
        "FROM kafka_listener_dead_letters",
    )
    assert sorted(set(restored)) == [("restored", 1)], restored  # each restored once, by one run
    assert sum(int(o.split("restored=")[1].split()[0]) for o in outputs) == 10


def _publish_while_down(db: TestDatabase, cluster: KafkaCluster, agg: str, keys: int, per_key: int) -> list[Event]:
    settings = KafkaguardSettings(
        bootstrap_servers=cluster.bootstrap,
        database_url=db.url,
        publish={"direct_timeout": 1.0, "default_mode": "direct"},
    )
    publisher = Publisher(settings)
    engine = sync_engine(db.url)
    events = []
    cluster.node(1).stop()
    try:
        for n in range(per_key):
            for k in range(keys):
                event = Event(type=f"{agg}.applied", key=f"k{k}", payload={"seq": n})
                with Session(engine) as session, session.begin():
                    assert publisher.publish(session, event) is PublishOutcome.DEAD_LETTERED
                events.append(event)
    finally:
        publisher.close()
        engine.dispose()
    return events


def test_publisher_dead_letters_from_an_outage_reach_kafka_in_key_order(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    agg = f"o{uuid.uuid4().hex[:6]}"
    events = _publish_while_down(migrated_database, dedicated_kafka, agg, keys=3, per_key=4)
    assert scalar(migrated_database.conninfo, "SELECT count(*) FROM kafka_publisher_dead_letters") == 12
    dedicated_kafka.restart(1)
    out = finish(cli(migrated_database, dedicated_kafka.bootstrap, "restore", "publisher", "--once"))
    assert "restored=12" in out, out
    messages = consume_all(dedicated_kafka.bootstrap, f"outbox.event.{agg}", 12, timeout=60)
    got: dict[str, list[str]] = {}
    for m in messages:
        got.setdefault(m.key().decode(), []).append(dict(m.headers())["event_id"].decode())
    expected: dict[str, list[str]] = {}
    for e in events:
        expected.setdefault(e.key, []).append(str(e.event_id))
    # Delivered at least once, in per-key order (a timed-out original may also arrive late: drop repeats).
    firsts = {k: list(dict.fromkeys(v)) for k, v in got.items()}
    assert firsts == expected


def test_handoff_applies_while_kafka_is_still_down(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    agg = f"h{uuid.uuid4().hex[:6]}"
    events = _publish_while_down(db, dedicated_kafka, agg, keys=2, per_key=3)
    group = consumer_app.new_group()
    # The handlers registered for test.applied: hand the events over as that type.
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("UPDATE kafka_publisher_dead_letters SET type = 'test.applied'")
    bootstrap = dedicated_kafka.bootstrap  # still stopped
    out = finish(
        cli(db, bootstrap, "restore", "publisher", "--once", "--strategy", "handoff", "--handoff-group", group)
    )
    assert "restored=6" in out, out
    out = finish(cli(db, bootstrap, "restore", "listener", "--once", "--app", APP, "--group", group))
    assert "restored=6" in out, out
    applied = rows(db.conninfo, "SELECT key, event_id::text FROM effects ORDER BY id")
    by_key: dict[str, list[str]] = {}
    for key, event_id in applied:
        by_key.setdefault(key, []).append(event_id)
    expected: dict[str, list[str]] = {}
    for e in events:
        expected.setdefault(e.key, []).append(str(e.event_id))
    assert by_key == expected
    assert not dedicated_kafka.node(1).is_running()


def test_direct_events_of_a_held_key_wait_behind_its_dead_letter_and_keep_order(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    db = migrated_database
    agg = f"q{uuid.uuid4().hex[:6]}"
    first = _publish_while_down(db, dedicated_kafka, agg, keys=1, per_key=2)  # key k0 now has dead letters
    dedicated_kafka.restart(1)
    settings = KafkaguardSettings(
        bootstrap_servers=dedicated_kafka.bootstrap, database_url=db.url,
        publish={"direct_timeout": 5.0, "default_mode": "direct"},
    )  # fmt: skip
    publisher = Publisher(settings)
    engine = sync_engine(db.url)
    later = [Event(type=f"{agg}.applied", key="k0", payload={"seq": 10}),
             Event(type=f"{agg}.applied", key="k1", payload={"seq": 0})]  # fmt: skip
    outcomes = []
    for event in later:
        with Session(engine) as session, session.begin():
            outcomes.append(publisher.publish(session, event))
    publisher.close()
    engine.dispose()
    # k0 waits behind its dead letters (Kafka is up, but delivering now would overtake them); k1 flows.
    assert outcomes == [PublishOutcome.DEAD_LETTERED, PublishOutcome.PUBLISHED]
    errors = rows(db.conninfo, "SELECT last_error_class FROM kafka_publisher_dead_letters ORDER BY id")
    assert errors[-1] == ("kafkaguard.errors.KeyHeldError",)
    out = finish(cli(db, dedicated_kafka.bootstrap, "restore", "publisher", "--once"))
    assert "restored=3" in out, out
    messages = consume_all(dedicated_kafka.bootstrap, f"outbox.event.{agg}", 4, timeout=60)
    k0 = list(dict.fromkeys(dict(m.headers())["event_id"].decode() for m in messages if m.key() == b"k0"))
    assert k0 == [str(e.event_id) for e in [*first, later[0]]]
