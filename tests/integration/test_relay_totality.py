"""Issue 13, relay side, on the real Kafka and PostgreSQL: no outbox row stops the relay.

Rows are written with plain SQL (as any service or operator can): each poison ends as a publisher
dead letter (or, if PostgreSQL refuses that, a last-resort row) with its data intact, the good rows
around it are published, and the relay keeps publishing what comes after.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import RestoreSettings
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.integration.dead_letter_rows import insert_publisher_dead_letter
from tests.integration.relay_helpers import TopicReader, header, relay_thread, scalar, wait_until

DEEP_ARRAY = "(repeat('[', 5000) || repeat(']', 5000))"
DEEP_OBJECT = "(repeat('{\"a\": ', 5000) || '1' || repeat('}', 5000))"


def insert(
    conn: psycopg.Connection[Any], topic: str, key: str, payload_sql: str = "'{\"ok\": true}'", **cols: Any
) -> str:
    """Insert one outbox row with plain SQL; ``payload_sql`` is an SQL expression. Return its id."""
    values = {"aggregatetype": "doc", "aggregateid": key, "type": "doc.saved", "topic": topic, **cols}
    names = ", ".join(values)
    marks = ", ".join(f"%({n})s" for n in values)
    sql = f"INSERT INTO outbox ({names}, payload) VALUES ({marks}, ({payload_sql})::jsonb) RETURNING id::text"
    row = conn.execute(sql, values).fetchone()
    assert row is not None
    return str(row[0])


def dead_letters(db: TestDatabase) -> dict[str, dict[str, Any]]:
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute(
            "SELECT event_id::text, key, type, topic, status, last_error_message, md5(payload::text), headers::text"
            " FROM kafka_publisher_dead_letters"
        ).fetchall()
    names = ("key", "type", "topic", "status", "error", "payload_md5", "headers")
    return {r[0]: dict(zip(names, r[1:], strict=True)) for r in rows}


def md5_of(db: TestDatabase, sql: str) -> str:
    return str(scalar(db, f"SELECT md5(({sql})::jsonb::text)"))


def published(reader: TopicReader, ids: set[str], timeout: float = 60) -> None:
    wait_until(lambda: (reader.poll_for(0.3), ids <= reader.event_ids())[1], timeout, f"{len(ids)} events on Kafka")


def outbox_ids(db: TestDatabase) -> list[str]:
    with psycopg.connect(db.conninfo) as conn:
        return [r[0] for r in conn.execute("SELECT id::text FROM outbox ORDER BY seq").fetchall()]


def test_poison_rows_are_dead_letters_and_the_relay_keeps_publishing(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics("poison")
    db = migrated_database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        good = [insert(conn, topic, "good-1")]
        deep_array = insert(conn, topic, "poison-1", DEEP_ARRAY)  # RecursionError in json.loads before
        good.append(insert(conn, topic, "good-2"))
        deep_object = insert(conn, topic, "poison-2", DEEP_OBJECT)
        deep_headers = insert(conn, topic, "poison-3", headers=psycopg.types.json.Jsonb({"h": 1}))
        conn.execute(
            f"UPDATE outbox SET headers = jsonb_build_object('h', {DEEP_ARRAY}::jsonb) WHERE id = %s", (deep_headers,)
        )
        forever = insert(conn, topic, "poison-4", occurred_at="infinity")  # psycopg cannot load it
        scalar_payload = insert(conn, topic, "poison-5", "'42'")
        good.append(insert(conn, topic, "good-3"))
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(db, kafka_bootstrap):
            published(reader, set(good))
            wait_until(lambda: len(dead_letters(db)) == 5, 60, "five dead letters")
            with psycopg.connect(db.conninfo, autocommit=True) as conn:
                later = insert(conn, topic, "good-4")
            published(reader, {later})  # the relay is still running
        wait_until(lambda: outbox_ids(db) == [], 30, "an empty outbox")
        letters = dead_letters(db)
        assert set(letters) == {deep_array, deep_object, deep_headers, forever, scalar_payload}
        assert letters[deep_array]["error"].startswith("not_an_object: ")
        assert letters[deep_array]["payload_md5"] == md5_of(db, DEEP_ARRAY), "the payload kept intact"
        assert letters[deep_object]["error"].startswith("too_deep: ")
        assert letters[deep_object]["payload_md5"] == md5_of(db, DEEP_OBJECT)
        assert letters[deep_headers]["error"].startswith("too_deep: ") and "headers" in letters[deep_headers]["error"]
        assert letters[forever]["error"].startswith("bad_occurred_at: ")
        assert letters[scalar_payload]["error"].startswith("not_an_object: ")
        assert {d["key"] for d in letters.values()} == {f"poison-{i}" for i in range(1, 6)}
        assert all(d["status"] == "pending" and d["topic"] == topic for d in letters.values())
        assert reader.event_ids() == {*good, later}, "nothing of a poison row reached Kafka"

        # The restore job reads each of these dead letters without crashing and fails it as itself.
        engine = sync_engine(db.url)
        producer = DeliveryProducer(kafka_bootstrap, message_timeout=20)
        try:
            report = PublisherRestoreJob(engine, RestoreSettings(), producer=producer).run_once()
        finally:
            producer.close()
            engine.dispose()
        assert (report.restored, report.retried + report.failed) == (0, 5)
        reader.poll_for(1.0)
        assert reader.event_ids() == {*good, later}
    finally:
        reader.close()


def test_a_2mb_record_is_a_dead_letter_and_its_keys_next_row_never_overtakes_it(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics("large")
    db = migrated_database
    big = "(jsonb_build_object('blob', repeat('x', 2000000)))::text"  # librdkafka refuses it in produce()
    # One transaction: the rows become visible together and land in one batch.
    with psycopg.connect(db.conninfo, autocommit=True) as conn, conn.transaction():
        first = insert(conn, topic, "K", big)
        second = insert(conn, topic, "K", "'{\"n\": 2}'")
        other = insert(conn, topic, "J")
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(db, kafka_bootstrap):
            published(reader, {other})
            wait_until(lambda: first in dead_letters(db), 60, "the 2 MB row's dead letter")
            reader.poll_for(2.0)  # the held row would have had time to arrive
            assert outbox_ids(db) == [second], "K's next row waits behind the dead letter"
        assert second not in reader.event_ids(), "the second row of K was never published before the first's fate"
        letter = dead_letters(db)[first]
        assert letter["key"] == "K" and "MSG_SIZE_TOO_LARGE" in letter["error"]
        assert letter["payload_md5"] == md5_of(db, big)
    finally:
        reader.close()


def test_an_empty_aggregate_id_is_dead_lettered_without_a_key_and_holds_back_nobody(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics("keyless")
    db = migrated_database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        keyless = [insert(conn, topic, ""), insert(conn, topic, "")]
        unknown = [insert(conn, topic, "unknown"), insert(conn, topic, "unknown")]
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(db, kafka_bootstrap):
            published(reader, set(unknown))
            wait_until(lambda: set(dead_letters(db)) == set(keyless), 60, "both keyless dead letters")
            wait_until(lambda: outbox_ids(db) == [], 30, "an empty outbox")
            with psycopg.connect(db.conninfo, autocommit=True) as conn:
                unknown.append(insert(conn, topic, "unknown"))  # a key really named 'unknown' is not held
            published(reader, {unknown[-1]})
        letters = dead_letters(db)
        assert all(d["key"] is None and d["error"].startswith("missing_key: ") for d in letters.values())
        assert reader.per_key_first_seen() == {"unknown": unknown}
        engine = sync_engine(db.url)
        try:
            _restore_keyless(engine, db, kafka_bootstrap, reader, keyless)
        finally:
            engine.dispose()
    finally:
        reader.close()


def _restore_keyless(engine: Engine, db: TestDatabase, bootstrap: str, reader: TopicReader, ids: list[str]) -> None:
    """The restore job retries a keyless dead letter as itself: never republished under an invented key,
    and a keyed record due in the same run is restored (keyless records block nothing)."""
    topic = str(scalar(db, "SELECT topic FROM kafka_publisher_dead_letters LIMIT 1"))
    keyed = Event(type="doc.saved", key="unknown", payload={"restored": True})
    with engine.begin() as conn:
        insert_publisher_dead_letter(conn, keyed, topic)
    producer = DeliveryProducer(bootstrap, message_timeout=20)
    try:
        report = PublisherRestoreJob(engine, RestoreSettings(), producer=producer).run_once()
    finally:
        producer.close()
    assert (report.restored, report.retried + report.failed) == (1, 2)
    published(reader, {str(keyed.event_id)})
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute(
            "SELECT key, attempts, last_error_message FROM kafka_publisher_dead_letters WHERE event_id::text = ANY(%s)",
            (ids,),
        ).fetchall()
    assert len(rows) == 2
    assert all(key is None and attempts == 2 and "non-empty key" in error for key, attempts, error in rows)
    reader.poll_for(1.0)
    assert not set(ids) & reader.event_ids()


def test_long_and_huge_aggregate_ids(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory, caplog: pytest.LogCaptureFixture
) -> None:
    topic = topics("longkeys")
    db = migrated_database
    keys = {"k" * 300: "", "l" * 5000: "", "m" * 1_500_000: ""}
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for key in keys:
            keys[key] = insert(conn, topic, key)
        after = insert(conn, topic, "m" * 1_500_000)  # behind the huge key's dead letter
    reader = TopicReader(kafka_bootstrap, topic)
    caplog.set_level(logging.INFO)
    try:
        with relay_thread(db, kafka_bootstrap):
            published(reader, {keys["k" * 300], keys["l" * 5000]})
            huge = keys["m" * 1_500_000]
            wait_until(lambda: huge in dead_letters(db), 60, "the huge key's dead letter")
            assert outbox_ids(db) == [after], "the huge key's next row waits behind its dead letter"
        by_id = {header(m, "event_id"): m.key() for m in reader.messages}
        assert by_id[keys["k" * 300]] == b"k" * 300 and by_id[keys["l" * 5000]] == b"l" * 5000
        assert dead_letters(db)[huge]["key"] == "m" * 1_500_000
        ours = [r.getMessage() for r in caplog.records if r.name.startswith("kafkaguard")]
        assert max(len(m) for m in ours) < 2000, "keys are truncated in log lines"
        assert any(huge in m and topic in m and "mmmm" in m for m in ours), "the failure line names id, topic, key"
    finally:
        reader.close()


def test_a_dead_letter_the_database_refuses_goes_to_the_last_resort(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics("lastresort")
    db = migrated_database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        # A constraint a deployment might add: the dead letter of this row is refused (SQLSTATE 23514).
        conn.execute("ALTER TABLE kafka_publisher_dead_letters ADD CONSTRAINT no_refuse CHECK (type <> 'refuse.me')")
        refused = insert(conn, topic, "R", "'[1, 2]'", type="refuse.me")
        kept = insert(conn, topic, "S", "'[3]'")  # an ordinary dead letter in the same settle transaction
        good = insert(conn, topic, "G")
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        with relay_thread(db, kafka_bootstrap):
            published(reader, {good})
            wait_until(lambda: outbox_ids(db) == [], 60, "an empty outbox")
        with psycopg.connect(db.conninfo) as conn:
            last = conn.execute(
                "SELECT store, outbox_id::text, raw_key, raw_value, error, topic FROM kafkaguard_last_resort"
            ).fetchall()
        assert len(last) == 1
        store, outbox_id, raw_key, raw_value, error, last_topic = last[0]
        assert (store, outbox_id, bytes(raw_key), bytes(raw_value), last_topic) == (
            "publisher",
            refused,
            b"R",
            b"[1, 2]",
            topic,
        )
        assert error.isascii() and "23514" in error and "not_an_object" in error
        assert set(dead_letters(db)) == {kept}
    finally:
        reader.close()
