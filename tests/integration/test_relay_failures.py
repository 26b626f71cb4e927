"""The relay's failure paths: a rejected record is dead-lettered with its key held back; a crash
between the broker's ack and the row's removal republishes (at-least-once), never loses."""

from __future__ import annotations

import base64
import os
import uuid

import psycopg
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy.orm import Session

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_event
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.transports.kafka_admin import delete_topics
from tests.integration.relay_helpers import TopicReader, header, relay_thread, scalar, wait_until


def _small_topic(bootstrap: str, name: str, max_bytes: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, num_partitions=1, replication_factor=1, config={"max.message.bytes": str(max_bytes)})
    admin.create_topics([new])[name].result(30)


def test_too_large_record_is_dead_lettered_and_its_key_waits(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    topic = f"small.{uuid.uuid4().hex[:8]}"
    _small_topic(kafka_bootstrap, topic, 64_000)
    noise = base64.b64encode(os.urandom(200_000)).decode()  # incompressible, far above the topic's limit
    a = [Event(type="doc.saved", key="A", payload={"n": i}) for i in range(3)]
    a[1] = Event(type="doc.saved", key="A", payload={"n": 1, "blob": noise})
    b = [Event(type="doc.saved", key="B", payload={"n": i}) for i in range(3)]
    engine = sync_engine(migrated_database.url)
    with Session(engine) as session, session.begin():
        for ev in (a[0], b[0], a[1], b[1], a[2], b[2]):
            add_event(session, ev, topic=topic)
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(migrated_database, kafka_bootstrap):
            wait_until(
                lambda: scalar(migrated_database, "SELECT count(*) FROM kafka_publisher_dead_letters") == 1,
                60,
                "the dead letter",
            )
            wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 4)[1], 60, "the other events")
            reader.poll_for(1.5)  # a held-back event would have had time to arrive
        with psycopg.connect(migrated_database.conninfo) as conn:
            dl = conn.execute(
                "SELECT event_id, key, source, status, topic, last_error_class, history"
                " FROM kafka_publisher_dead_letters"
            ).fetchone()
            left = [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY seq").fetchall()]
        assert dl is not None
        assert (dl[0], dl[1], dl[2], dl[3], dl[4]) == (a[1].event_id, "A", "outbox", "pending", topic)
        assert dl[5] == "kafkaguard.errors.EventRejectedError"
        assert dl[6][0]["attempts"] == 1 and "MSG_SIZE_TOO_LARGE" in dl[6][0]["error_message"]
        assert left == [a[2].event_id], "A's later event waits behind its dead letter"
        order = reader.per_key_first_seen()
        assert order == {"A": [str(a[0].event_id)], "B": [str(e.event_id) for e in b]}

        # Configurable: with blocking off, the later event of A flows past the dead letter.
        with relay_thread(migrated_database, kafka_bootstrap, block_key_on_dead_letter=False):
            wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 60, "A's last event")
        reader.poll_for(2)
        assert reader.per_key_first_seen()["A"] == [str(a[0].event_id), str(a[2].event_id)]
    finally:
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])


CRASH_ONCE = """
CREATE SEQUENCE crash_once;
CREATE FUNCTION crash_on_first_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- nextval is not rolled back, so only the first removal dies: the relay's connection is cut
  -- after the broker acknowledged the batch and before the removal commits.
  IF nextval('crash_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER crash_on_first_delete BEFORE DELETE ON outbox FOR EACH STATEMENT
EXECUTE FUNCTION crash_on_first_delete();
"""


def test_crash_between_ack_and_removal_republishes_without_loss(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    topic = f"crash.{uuid.uuid4().hex[:8]}"
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute(CRASH_ONCE)
    events = [Event(type="doc.saved", key=f"k{i % 4}", payload={"i": i}) for i in range(40)]
    engine = sync_engine(migrated_database.url)
    with Session(engine) as session, session.begin():
        for ev in events:
            add_event(session, ev, topic=topic)
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(migrated_database, kafka_bootstrap):
            wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 60, "an empty outbox")
        assert scalar(migrated_database, "SELECT last_value FROM crash_once") >= 2, "the crash was injected"
        wait_until(lambda: (reader.poll_for(0.5), len(reader.messages) >= 80)[1], 60, "both copies of the batch")
        ids = [header(m, "event_id") for m in reader.messages]
        assert len(ids) == 80 and len(set(ids)) == 40, "the acknowledged batch was published again, none lost"
        expected: dict[str, list[str]] = {}
        for ev in events:
            expected.setdefault(ev.key, []).append(str(ev.event_id))
        assert reader.per_key_first_seen() == expected
    finally:
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])
