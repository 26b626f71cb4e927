"""Debezium on a distributed Kafka Connect cluster (issue 18, item 5), on the real broker, the databases and Connect.

The takeover test runs on PostgreSQL and on MariaDB.

Two workers in one group; the connector is registered over REST from ``kafkaguard debezium config
--format json`` output, whose database password is a FileConfigProvider reference to a file the
workers read. 2,000 committed events over 20 keys (about 5 % of transactions rolled back) are written
by four threads; the worker running the task is killed -9 mid-stream and the other takes the task
over. Then every committed event is on Kafka, none of the rolled back, in per-key commit order after
dedupe (at-least-once: a replayed stretch after the takeover may repeat events).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from kafkaguard.cli.app import app
from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.connect import wait_streaming
from kafkaguard.envelope import Event
from kafkaguard.relay.debezium import DebeziumOptions
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing import stacks
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase
from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics
from tests.integration.relay_helpers import TopicReader, header, wait_until

KEYS = 20
PER_KEY = 100
WRITERS = 4
TOTAL = KEYS * PER_KEY


def source_url(db: TestDatabase | TestMariaDatabase) -> str:
    """The URL Debezium connects with: PostgreSQL's server URL (the schema apart), MariaDB's database URL."""
    return db.url if isinstance(db, TestMariaDatabase) else db.server.url()


def test_a_worker_killed_mid_stream_hands_its_task_over_and_every_committed_event_arrives_in_key_order(
    store_database: TestDatabase | TestMariaDatabase, kafka_bootstrap: str
) -> None:
    started = time.monotonic()
    db = store_database
    url = source_url(db)
    conninfo = db.server.conninfo() if isinstance(db, TestDatabase) else None
    agg = f"dzc{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    engine = sync_engine(db.url)
    password = make_url(url).password
    assert password
    committed: dict[str, list[str]] = {}
    lock = threading.Lock()
    written = [0]
    rolled_back = [0]
    taken_over = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            rng = random.Random(w)
            keys = [f"k{k}" for k in range(w, KEYS, WRITERS)]
            for n in range(PER_KEY):
                if n == 2 * PER_KEY // 3:  # the last third after the takeover: before, during and after it
                    assert taken_over.wait(180), "no takeover"
                for key in keys:
                    if rng.random() < 0.05:  # rolled back: must never reach Kafka
                        with Session(engine) as session:
                            session.begin()
                            ghost = Event(type="test.ghost", key=key, payload={}, aggregate_type=agg)
                            add_events(session, [ghost], delete_after_insert=True)
                            session.rollback()
                        with lock:
                            rolled_back[0] += 1
                    event = Event(type="test.applied", key=key, payload={"seq": n}, aggregate_type=agg)
                    with Session(engine) as session, session.begin():
                        add_events(session, [event], delete_after_insert=True)
                    with lock:
                        committed.setdefault(key, []).append(str(event.event_id))
                        written[0] += 1
        except BaseException as exc:
            errors.append(exc)
            raise

    reader = TopicReader(kafka_bootstrap, topic)
    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    try:
        with stacks.debezium_cluster(kafka_bootstrap, url, db.schema, conninfo, register=False) as cluster:
            assert len(cluster.live()) == 2
            result = CliRunner().invoke(
                app,
                ["debezium", "config", "--schema", db.schema, "--database-url", url, "--format", "json",
                 "--password-file", str(cluster.password_file)],
                env={"KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap},  # MariaDB's schema history goes there
                catch_exceptions=False,
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            assert password not in result.output  # a provider reference, not the password
            body = json.loads(result.output)
            name = body["name"]
            cluster.register(body)
            # what Connect stores and shows is the reference; the workers resolved it (the task runs)
            shown = httpx.get(f"{cluster.live()[0].rest}/connectors/{name}/config", timeout=10).json()
            assert shown["database.password"] == "${file:" + str(cluster.password_file) + ":password}"
            first = cluster.wait_running(name, timeout=60)
            if isinstance(db, TestMariaDatabase):  # durable from its first streamed offset on (wait_streaming)
                wait_streaming(kafka_bootstrap, DebeziumOptions(url, schema=db.schema).heartbeat_topic)

            for t in threads:
                t.start()
            wait_until(lambda: written[0] >= TOTAL // 3, 120, "a third of the events written")
            wait_until(lambda: (reader.poll_for(0.2), len(reader.messages) >= TOTAL // 5)[1], 120, "events flowing")
            victim = cluster.worker(first)
            victim.kill()  # -9, with records in flight and offsets unflushed
            killed_at = time.monotonic()
            assert not victim.is_running()
            second = cluster.wait_running(name, timeout=120, not_on=first)
            takeover = time.monotonic() - killed_at
            taken_over.set()
            assert second != first and cluster.worker(second).is_running()
            assert takeover < 60, f"the takeover took {takeover:.0f}s (dev timings: 6 s session, 10 s delay)"
            for t in threads:
                t.join(timeout=300)
            assert not errors, errors
            assert written[0] == TOTAL
            wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= TOTAL)[1], 180, "every event on Kafka")
            reader.poll_for(1.0)
            assert cluster.task_worker(name) == second  # still running where it moved
        with engine.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    finally:
        taken_over.set()
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])
    ids = [header(m, "event_id") for m in reader.messages]
    all_committed = {eid for seq in committed.values() for eid in seq}
    types = {header(m, "type") for m in reader.messages}
    assert types == {"test.applied"}, "an event of a rolled-back transaction was relayed"
    assert set(ids) == all_committed and len(all_committed) == TOTAL, "an event lost or invented"
    assert reader.per_key_first_seen() == committed, "per-key commit order broken"
    assert rolled_back[0] > 0  # the workload did roll some transactions back
    assert left == 0  # insert-then-delete kept the table empty
    print(  # the measured figures, for the report (pytest -s)
        f"\ndistributed debezium: {TOTAL} committed, {rolled_back[0]} rolled back, {len(ids)} messages, "
        f"{len(ids) - len(set(ids))} duplicates, task {first} -> {second} {takeover:.1f}s after the kill, "
        f"test {time.monotonic() - started:.1f}s"
    )


def test_debezium_cluster_registers_kafkaguards_connector_with_the_password_as_a_reference(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    agg = f"dzr{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    ensure_topics(kafka_bootstrap, [topic], partitions=3)
    engine = sync_engine(db.url)
    reader = TopicReader(kafka_bootstrap, topic)
    events = [Event(type="test.applied", key=f"k{n % 5}", payload={"seq": n}, aggregate_type=agg) for n in range(50)]
    try:
        with stacks.debezium_cluster(kafka_bootstrap, db.server.url(), db.schema, db.server.conninfo()) as cluster:
            name = f"kafkaguard-outbox-{db.schema}"
            assert cluster.task_worker(name) in {w.worker_id for w in cluster.workers}
            for w in cluster.workers:  # any worker answers for the cluster
                shown = httpx.get(f"{w.rest}/connectors/{name}/config", timeout=10).json()
                assert shown["database.password"].startswith("${file:")
            for event in events:
                with Session(engine) as session, session.begin():
                    add_events(session, [event], delete_after_insert=True)
            wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 50)[1], 120, "every event on Kafka")
    finally:
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])
    by_key: dict[str, list[str]] = {}
    for event in events:
        by_key.setdefault(event.key, []).append(str(event.event_id))
    assert reader.per_key_first_seen() == by_key
