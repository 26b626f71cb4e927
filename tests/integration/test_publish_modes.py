"""direct, http and background modes on the real Kafka and PostgreSQL, through the Publisher facade."""

from __future__ import annotations

import base64
import concurrent.futures
import logging
import os
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard import Event, Publisher, PublishOutcome, PublishUnavailableError
from kafkaguard.db.engine import async_engine, sync_engine
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.publisher.background import BackgroundOutcome
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.transports.kafka_admin import delete_topics
from tests.http_auth import SECRET
from tests.integration.relay_helpers import TopicReader, header, scalar, wait_until


def _settings(bootstrap: str, db: TestDatabase, **publish: object) -> KafkaguardSettings:
    return KafkaguardSettings(
        bootstrap_servers=bootstrap, database_url=db.url, publish={"direct_timeout": 3.0, **publish}
    )


def _with_notes(db: TestDatabase) -> None:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id text PRIMARY KEY)")


def _noise() -> str:
    """Incompressible text far above the small topics' 2,000-byte limit (lz4 cannot shrink it)."""
    return base64.b64encode(os.urandom(8000)).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def agg(kafka_bootstrap: str) -> Iterator[str]:
    name = f"m{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(kafka_bootstrap, [f"outbox.event.{name}", f"outbox.event.{name}.dlq"])


# --- direct -----------------------------------------------------------------------------------


async def test_direct_async_publishes_within_the_transaction(
    migrated_database: TestDatabase, kafka_bootstrap: str, agg: str
) -> None:
    publisher = Publisher(_settings(kafka_bootstrap, migrated_database, default_mode="direct"))
    engine = async_engine(migrated_database.url)
    event = Event(type=f"{agg}.created", key="p1", payload={"n": 1})
    async with AsyncSession(engine) as session, session.begin():
        assert await publisher.publish_async(session, event) is PublishOutcome.PUBLISHED
    await engine.dispose()
    publisher.close()
    reader = TopicReader(kafka_bootstrap, f"outbox.event.{agg}")
    wait_until(lambda: (reader.poll_for(0.5), len(reader.messages) == 1)[1], 30, "the event")
    reader.close()
    assert header(reader.messages[0], "event_id") == str(event.event_id)


def test_direct_broker_down_request_succeeds_with_dead_letter(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    _with_notes(migrated_database)
    dedicated_kafka.node(1).stop()
    publisher = Publisher(_settings(dedicated_kafka.bootstrap, migrated_database, default_mode="direct"))
    engine = sync_engine(migrated_database.url)
    event = Event(type="note.created", key="n1", payload={"n": 1})
    with Session(engine) as session, session.begin():
        session.execute(text("INSERT INTO notes VALUES ('n1')"))
        assert publisher.publish(session, event) is PublishOutcome.DEAD_LETTERED
    engine.dispose()
    publisher.close()
    assert scalar(migrated_database, "SELECT count(*) FROM notes") == 1
    with psycopg.connect(migrated_database.conninfo) as conn:
        row = conn.execute(
            "SELECT event_id, source, status, last_error_class, jsonb_array_length(history)"
            " FROM kafka_publisher_dead_letters"
        ).fetchone()
    assert row is not None
    assert row[:3] == (event.event_id, "direct", "pending")
    assert row[3].startswith("kafkaguard.errors.") and row[4] == 1


def test_direct_broker_down_and_store_unwritable_rolls_back(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    _with_notes(migrated_database)
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE kafka_publisher_dead_letters RENAME TO dead_letters_gone")
    dedicated_kafka.node(1).stop()
    publisher = Publisher(_settings(dedicated_kafka.bootstrap, migrated_database, default_mode="direct"))
    engine = sync_engine(migrated_database.url)
    with (
        pytest.raises(PublishUnavailableError, match="rolled back") as caught,
        Session(engine) as session,
        session.begin(),
    ):
        session.execute(text("INSERT INTO notes VALUES ('n1')"))
        publisher.publish(session, Event(type="note.created", key="n1", payload={}))
    engine.dispose()
    publisher.close()
    assert caught.value.event_id
    assert scalar(migrated_database, "SELECT count(*) FROM notes") == 0, "the business write was rolled back"


def test_http_503_handler() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from kafkaguard.interfaces.http import install_exception_handlers

    app = FastAPI()
    install_exception_handlers(app)

    @app.post("/posts")
    def create() -> None:
        raise PublishUnavailableError("store down", event_id="e-1", cause="broker down")

    response = TestClient(app).post("/posts")
    assert response.status_code == 503
    assert response.json()["event_id"] == "e-1" and response.headers["Retry-After"]


# --- http -------------------------------------------------------------------------------------


def test_http_endpoint_down_becomes_a_dead_letter(migrated_database: TestDatabase, kafka_bootstrap: str) -> None:
    url = f"http://127.0.0.1:{_free_port()}/events"  # nothing listens there
    settings = _settings(
        kafka_bootstrap,
        migrated_database,
        default_mode="http",
        http_default_endpoint=url,
        http_retries=1,
        http_secrets=[SECRET],
    )
    publisher = Publisher(settings)
    engine = sync_engine(migrated_database.url)
    event = Event(type="post.created", key="p1", payload={"n": 1})
    with Session(engine) as session, session.begin():
        assert publisher.publish(session, event) is PublishOutcome.DEAD_LETTERED
    engine.dispose()
    publisher.close()
    with psycopg.connect(migrated_database.conninfo) as conn:
        row = conn.execute(
            "SELECT event_id, source, topic, last_error_message FROM kafka_publisher_dead_letters"
        ).fetchone()
    assert row is not None and row[:3] == (event.event_id, "http", "outbox.event.post")
    assert "after 2 attempts" in row[3]


# --- background -------------------------------------------------------------------------------


def _small_topic(bootstrap: str, name: str, max_bytes: int = 2000) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, num_partitions=1, replication_factor=1, config={"max.message.bytes": str(max_bytes)})
    admin.create_topics([new])[name].result(30)


def _background(bootstrap: str, db: TestDatabase, session_work: object = None, **publish: object) -> Publisher:
    retry = {"max_attempts": 3, "backoff": {"kind": "fixed", "seconds": 0.5}}
    return Publisher(
        _settings(bootstrap, db, default_mode="background", background_timeout=2.0, background_retry=retry, **publish)
    )


def _publish_and_commit(publisher: Publisher, db: TestDatabase, event: Event) -> BackgroundOutcome:
    engine = sync_engine(db.url)
    with Session(engine) as session:
        with session.begin():
            assert publisher.publish(session, event) is PublishOutcome.SCHEDULED
            assert Publisher.background_futures(session) == [], "nothing starts before the commit"
        futures = Publisher.background_futures(session)
    assert len(futures) == 1
    outcome = futures[0].result(timeout=60)
    engine.dispose()
    return outcome


def test_background_retries_until_the_broker_answers(
    migrated_database: TestDatabase, dedicated_kafka: KafkaCluster
) -> None:
    publisher = _background(dedicated_kafka.bootstrap, migrated_database)
    event = Event(type="order.placed", key="o1", payload={"n": 1})
    publisher.background().topics.ensure("outbox.event.order")
    dedicated_kafka.node(1).pause()
    engine = sync_engine(migrated_database.url)
    with Session(engine) as session, session.begin():
        publisher.publish(session, event)
    future = Publisher.background_futures(session)[0]
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=2.5)  # the first attempt (2 s budget) fails while the broker is frozen
    dedicated_kafka.node(1).resume()
    assert future.result(timeout=60) is BackgroundOutcome.PUBLISHED
    engine.dispose()
    publisher.close()
    reader = TopicReader(dedicated_kafka.bootstrap, "outbox.event.order")
    wait_until(lambda: (reader.poll_for(0.5), str(event.event_id) in reader.event_ids())[1], 30, "the event")
    reader.close()


def test_background_rejected_event_goes_to_the_dlq_topic(
    migrated_database: TestDatabase, kafka_bootstrap: str, agg: str
) -> None:
    _small_topic(kafka_bootstrap, f"outbox.event.{agg}")
    publisher = _background(kafka_bootstrap, migrated_database)
    event = Event(type=f"{agg}.placed", key="o1", payload={"blob": _noise()})
    assert _publish_and_commit(publisher, migrated_database, event) is BackgroundOutcome.DLQ_TOPIC
    publisher.close()
    reader = TopicReader(kafka_bootstrap, f"outbox.event.{agg}.dlq")
    wait_until(lambda: (reader.poll_for(0.5), len(reader.messages) == 1)[1], 30, "the DLQ record")
    reader.close()
    msg = reader.messages[0]
    assert header(msg, "event_id") == str(event.event_id)
    assert header(msg, "kafkaguard.original.topic") == f"outbox.event.{agg}"
    assert header(msg, "kafkaguard.exception.class") == "kafkaguard.errors.EventRejectedError"


def test_background_dlq_refused_too_goes_to_the_table(
    migrated_database: TestDatabase, kafka_bootstrap: str, agg: str
) -> None:
    _small_topic(kafka_bootstrap, f"outbox.event.{agg}")
    _small_topic(kafka_bootstrap, f"outbox.event.{agg}.dlq")
    publisher = _background(kafka_bootstrap, migrated_database)
    event = Event(type=f"{agg}.placed", key="o1", payload={"blob": _noise()})
    assert _publish_and_commit(publisher, migrated_database, event) is BackgroundOutcome.DEAD_LETTER_TABLE
    publisher.close()
    with psycopg.connect(migrated_database.conninfo) as conn:
        row = conn.execute("SELECT event_id, source, attempts FROM kafka_publisher_dead_letters").fetchone()
    assert row == (event.event_id, "background", 1)


def test_background_last_resort_is_a_critical_log(
    migrated_database: TestDatabase, kafka_bootstrap: str, agg: str, caplog: pytest.LogCaptureFixture
) -> None:
    _small_topic(kafka_bootstrap, f"outbox.event.{agg}")
    _small_topic(kafka_bootstrap, f"outbox.event.{agg}.dlq")
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE kafka_publisher_dead_letters RENAME TO dead_letters_gone")
    publisher = _background(kafka_bootstrap, migrated_database)
    event = Event(type=f"{agg}.placed", key="o1", payload={"blob": _noise()})
    with caplog.at_level(logging.CRITICAL, logger="kafkaguard.publisher.background"):
        assert _publish_and_commit(publisher, migrated_database, event) is BackgroundOutcome.LOGGED
    publisher.close()
    critical = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1
    assert str(event.event_id) in critical[0].getMessage() and '"key": "o1"' in critical[0].getMessage()


def test_background_rolled_back_transaction_publishes_nothing(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    publisher = _background(kafka_bootstrap, migrated_database)
    engine = sync_engine(migrated_database.url)
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        publisher.publish(session, Event(type="order.placed", key="o1", payload={}))
        raise RuntimeError("business write failed")
    assert Publisher.background_futures(session) == []
    engine.dispose()
    publisher.close()
