"""The relay, the consumer, the restore jobs and the cleanup on PostgreSQL and on MariaDB (issue 18).

Every test runs once per database (``store_database``) against the real servers and Kafka, through
the public entry points and one URL: the same code above the stores, the adapter chosen by the URL.
"""

from __future__ import annotations

import base64
import os
import signal
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select, text, update
from sqlalchemy.orm import Session

from kafkaguard import Event, create_engine
from kafkaguard.consumer import HandlerContext, HandlerRegistry
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.consumer.worker import Worker
from kafkaguard.db.columns import PublishSource
from kafkaguard.maintenance.cleanup import CleanupSettings, run_cleanup
from kafkaguard.publisher.facade import Publisher
from kafkaguard.restore.listener_functions import restore_key
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import RestoreSettings
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.by_database import publisher_dead_letters_for
from kafkaguard.stores.outbox import add_event
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase
from kafkaguard.transports.kafka_admin import ensure_topics
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.integration import consumer_app as app
from tests.integration.relay_helpers import TopicReader, relay_thread, wait_until

pytestmark = pytest.mark.integration

Db = TestDatabase | TestMariaDatabase

effects_meta = MetaData()
EFFECTS = Table(
    "effects_both",
    effects_meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("k", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
)
BROKEN = Table("broken_both", effects_meta, Column("k", String(64), primary_key=True))


def engine_of(db: Db) -> Engine:
    return create_engine(url=db.url, schema=db.schema)


def count(engine: Engine, sql: str, params: dict[str, Any] | None = None) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params or {}).scalar_one())


def settings_of(db: Db, bootstrap: str, **extra: Any) -> KafkaguardSettings:
    return KafkaguardSettings(database_url=db.url, db_schema=db.schema, bootstrap_servers=bootstrap, **extra)


def relay_process(db: Db, bootstrap: str, log: Path) -> Any:
    import subprocess
    import sys

    env = {**os.environ, "KAFKAGUARD_TOPICS__PARTITIONS": "3", "KAFKAGUARD_DB_SCHEMA": db.schema}
    cmd = [sys.executable, "-m", "kafkaguard", "relay", "--url", db.url, "--bootstrap-servers", bootstrap,
           "--poll-interval", "0.5", "--name", log.stem]  # fmt: skip
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def test_relay_keeps_key_order_and_moves_shards_when_an_instance_is_killed(
    store_database: Db, kafka_bootstrap: str, tmp_path: Path
) -> None:
    db = store_database
    aggregate = f"both{uuid.uuid4().hex[:6]}"
    engine = engine_of(db)
    publisher = Publisher(settings_of(db, kafka_bootstrap), engine=engine)
    events = [Event(type=f"{aggregate}.changed", key=f"k{i % 20}", aggregate_type=aggregate, payload={"i": i})
              for i in range(600)]  # fmt: skip
    reader = TopicReader(kafka_bootstrap, f"outbox.event.{aggregate}")
    first, second = relay_process(db, kafka_bootstrap, tmp_path / "r1.log"), None
    try:
        with Session(engine) as session, session.begin():
            for e in events[:300]:
                publisher.publish(session, e)
        wait_until(lambda: count(engine, "SELECT count(*) FROM outbox") < 300, 60, "the first relay to publish")
        second = relay_process(db, kafka_bootstrap, tmp_path / "r2.log")
        with Session(engine) as session, session.begin():
            for e in events[300:]:
                publisher.publish(session, e)
        first.send_signal(signal.SIGKILL)  # its named locks / advisory locks go with its connection
        first.wait(10)
        wait_until(lambda: count(engine, "SELECT count(*) FROM outbox") == 0, 90, "the survivor to take every shard")
        wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 600)[1], 60, "all 600 on Kafka")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        reader.close()
        publisher.close()
        engine.dispose()
    assert reader.event_ids() == {str(e.event_id) for e in events}, "every committed event, nothing else"
    wanted: dict[str, list[str]] = {}
    for e in events:
        wanted.setdefault(e.key, []).append(str(e.event_id))
    assert reader.per_key_first_seen() == wanted, "per-key order (after dedupe) across both relays"


def _small_topic(bootstrap: str, topic: str, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": str(max_bytes)})])
    for f in futures.values():
        f.result(30)


def test_relay_dead_letters_a_refused_row_and_holds_its_key(store_database: Db, kafka_bootstrap: str) -> None:
    db = store_database
    topic = f"small.{uuid.uuid4().hex[:8]}"
    _small_topic(kafka_bootstrap, topic, 64_000)
    noise = base64.b64encode(os.urandom(200_000)).decode()  # incompressible, above the topic's limit
    a = [Event(type="doc.saved", key="A", payload={"n": i}) for i in range(3)]
    a[1] = Event(type="doc.saved", key="A", payload={"n": 1, "blob": noise})
    b = Event(type="doc.saved", key="B", payload={"n": 0})
    engine = engine_of(db)
    with Session(engine) as session, session.begin():
        for ev in (a[0], a[1], b, a[2]):
            add_event(session, ev, topic=topic)
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(db, kafka_bootstrap):
            wait_until(lambda: count(engine, "SELECT count(*) FROM kafka_publisher_dead_letters") == 1, 60, "the DL")
            wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 2)[1], 60, "A's first and B")
        with engine.connect() as conn:
            dl = conn.execute(
                text("SELECT event_id, source, status, last_error_class FROM kafka_publisher_dead_letters")
            ).one()
            left = [str(r[0]) for r in conn.execute(text("SELECT id FROM outbox ORDER BY seq"))]
    finally:
        reader.close()
        engine.dispose()
    assert (str(dl[0]), dl[1], dl[2], dl[3]) == (str(a[1].event_id), "outbox", "pending",
                                                 "kafkaguard.errors.EventRejectedError")  # fmt: skip
    assert left == [str(a[2].event_id)], "A's later event waits behind its dead letter"
    assert reader.per_key_first_seen() == {"A": [str(a[0].event_id)], "B": [str(b.event_id)]}


registry = HandlerRegistry()


@registry.handler("test.applied")
def apply_effect(event: Event, ctx: HandlerContext[Session]) -> None:
    if ctx.session.execute(select(BROKEN.c.k).where(BROKEN.c.k == event.key)).first() is not None:
        raise app.BrokenKeyError(f"key {event.key} is broken")
    ctx.session.execute(insert(EFFECTS), {"event_id": str(event.event_id), "k": event.key,
                                          "seq": int(str(event.payload["seq"]))})  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 100], ids=["tx-per-event", "chunks"])
def test_consumer_applies_once_parks_a_broken_key_and_the_restore_applies_it_in_order(
    store_database: Db, kafka_bootstrap: str, topics: Any, batch_size: int
) -> None:
    db = store_database
    engine = engine_of(db)
    effects_meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(BROKEN), {"k": "k3"})
    topic = topics("both", partitions=3)
    events = app.make_events(400, keys=10)
    sent = app.produce(kafka_bootstrap, topic, events, twice=set(range(0, 400, 20)))  # 20 duplicates
    from confluent_kafka import Producer

    poison = Producer({"bootstrap.servers": kafka_bootstrap})
    poison.produce(topic, key=b"k-poison", value=b"\xff\x00 not an event")
    poison.flush(30)
    group = app.new_group()
    consumer = ConsumerSettings(group_id=group, topics=(topic,), batch_size=batch_size)
    settings = settings_of(db, kafka_bootstrap, consumer=consumer)
    source = KafkaSource(kafka_bootstrap, group, [topic], overrides=settings.kafka_consumer_overrides())
    seen = [0]

    def on_outcome(_record: Any, _outcome: Any) -> None:
        seen[0] += 1
        if seen[0] >= sent + 1:
            worker.stop()

    worker = Worker.from_settings(settings, registry, on_outcome=on_outcome, source=source)  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), f"outcomes {worker.stats}"
    k3 = [e for e in events if e.key == "k3"]
    assert worker.stats["duplicate"] == 20
    with engine.connect() as conn:
        applied = conn.execute(select(func.count()).select_from(EFFECTS)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(EFFECTS.c.event_id)))).scalar_one()
        dls = conn.execute(text("SELECT reason, status, raw_value FROM kafka_listener_dead_letters ORDER BY id")).all()
    assert applied == distinct == 400 - len(k3), "every event of the healthy keys once"
    poison_rows = [r for r in dls if r[2] == b"\xff\x00 not an event"]
    assert len(poison_rows) == 1, "the poison message is kept with its raw bytes"
    k3_rows = [r for r in dls if r[2] != b"\xff\x00 not an event"]
    assert len(k3_rows) == len(k3), "k3's head is dead-lettered and its later events parked behind it"
    assert {r[1] for r in k3_rows} == {"pending", "parked"}

    with engine.begin() as conn:  # the operator repairs the key; the restore job applies it in order
        conn.execute(BROKEN.delete())
    report = restore_key(engine, registry, group, "k3", restored_by="test")
    assert len(report.restored) == len(k3), report
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(select(EFFECTS.c.seq).where(EFFECTS.c.k == "k3").order_by(EFFECTS.c.id))]
        open_left = count(
            engine, "SELECT count(*) FROM kafka_listener_dead_letters WHERE status IN ('pending','parked')"
        )
    assert seqs == list(range(len(k3))), "k3 applied once each, in its order"
    assert open_left == 1, "only the poison message is left for an operator"
    engine.dispose()


def test_publisher_restore_republishes_a_dead_letter_and_marks_it(store_database: Db, kafka_bootstrap: str) -> None:
    db = store_database
    engine = engine_of(db)
    topic = f"restore.{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1, replication=1)
    store = publisher_dead_letters_for(engine)
    event = Event(type="doc.saved", key="K", payload={"n": 1})
    store.add(None, event, topic=topic, source=PublishSource.DIRECT, error=TimeoutError("broker down"))
    store.add(None, event, topic=topic, source=PublishSource.DIRECT, error=TimeoutError("again"))  # idempotent
    producer = DeliveryProducer(kafka_bootstrap, message_timeout=10)
    job = PublisherRestoreJob(engine, RestoreSettings(), producer=producer, ensure_topic=lambda t: None,
                              clock=lambda: datetime.now(UTC) + timedelta(seconds=1))  # fmt: skip
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        report = job.run_once()
        wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 1)[1], 60, "the republished event")
    finally:
        job.close()
        reader.close()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, restored_by, attempts FROM kafka_publisher_dead_letters")).all()
    engine.dispose()
    assert report.restored == 1, report
    assert reader.event_ids() == {str(event.event_id)}
    assert [tuple(r) for r in rows] == [("restored", "republish", 2)], "one record: dead-lettered once, restored once"


def test_cleanup_deletes_only_expired_rows(store_database: Db, kafka_bootstrap: str) -> None:
    db = store_database
    engine = engine_of(db)
    publisher = Publisher(settings_of(db, kafka_bootstrap), engine=engine)
    with Session(engine) as session, session.begin():
        for i in range(4):
            publisher.publish(session, Event(type="doc.saved", key=f"c{i}", payload={"i": i}))
    old = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as conn:  # two published long ago, one published now, one unpublished
        ids = [str(r[0]) for r in conn.execute(text("SELECT id FROM outbox ORDER BY seq"))]
        from kafkaguard.db.tables import outbox

        conn.execute(update(outbox).where(outbox.c.id.in_(ids[:2])).values(published_at=old))
        conn.execute(update(outbox).where(outbox.c.id == ids[2]).values(published_at=datetime.now(UTC)))
    report = run_cleanup(engine, CleanupSettings(outbox_retention=7 * 86400))
    with engine.connect() as conn:
        left = sorted(str(r[0]) for r in conn.execute(text("SELECT id FROM outbox")))
    publisher.close()
    engine.dispose()
    assert report.deleted["outbox"] == 2
    assert left == sorted(ids[2:]), "the recent and the unpublished rows stay"
