"""The session's broker and database are real, and tests are isolated from each other."""

import json

import psycopg

from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.integration.kafka_helpers import consume_all


def test_round_trip_through_postgres_and_kafka(
    kafka_bootstrap: str, topics: TopicFactory, database: TestDatabase
) -> None:
    topic = topics("roundtrip")
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE note (id serial PRIMARY KEY, body jsonb NOT NULL)")
        conn.execute("INSERT INTO note (body) VALUES (%s)", (json.dumps({"n": 42}),))
        (body,) = conn.execute("SELECT body::text FROM note").fetchone() or ("",)
    producer = DeliveryProducer(kafka_bootstrap, message_timeout=10)
    delivered = producer.send(topic, body.encode(), key=b"k1", headers=[("event_id", b"e1")])
    assert delivered.topic == topic and delivered.offset >= 0
    [msg] = consume_all(kafka_bootstrap, topic, 1)
    assert msg.key() == b"k1"
    assert json.loads(msg.value()) == {"n": 42}
    assert dict(msg.headers() or []) == {"event_id": b"e1"}


def test_each_test_gets_its_own_schema(database: TestDatabase) -> None:
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or ("",)
        assert schema == database.schema
        # The table of the other test lives in another schema (dropped after it), never here.
        row = conn.execute("SELECT to_regclass('note')").fetchone()
        assert row == (None,)


def test_wal_level_is_logical_and_commits_are_durable(database: TestDatabase) -> None:
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
