"""``db_schema`` is honoured without the user touching search_path, and a schema without kafkaguard's
tables fails at start in one line naming the schema and `kafkaguard db upgrade --schema X` (real
PostgreSQL; the relay and consumer commands with the real Kafka)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.orm import Session

import kafkaguard
from kafkaguard.consumer.runner import build_worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import libpq_conninfo
from kafkaguard.envelope import Event
from kafkaguard.errors import SchemaNotReadyError
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.transports.kafka_topics import TopicRegistry
from tests.integration import async_app
from tests.integration.cli_operator_helpers import assert_one_error_line, run_cli
from tests.integration.consumer_helpers import rows


def _outbox_keys(db: TestDatabase) -> list[str]:
    return [str(r[0]) for r in rows(db.conninfo, f"SELECT aggregateid FROM {db.schema}.outbox ORDER BY created_at")]


def _publish_settings(db: TestDatabase, schema: str | None = None) -> KafkaguardSettings:
    return KafkaguardSettings(database_url=db.server.url(), db_schema=schema or db.schema)


def test_publisher_writes_into_db_schema_on_a_plain_engine(migrated_database: TestDatabase) -> None:
    db = migrated_database
    publisher = kafkaguard.Publisher(_publish_settings(db))
    engine = sqlalchemy.create_engine(db.server.url())  # the user's own engine: default search_path
    try:
        with Session(engine) as session, session.begin():
            session.execute(text("CREATE TEMP TABLE notes (id text) ON COMMIT DROP"))
            before = session.execute(text("SHOW search_path")).scalar()
            for key in ("a", "b"):
                session.execute(text("INSERT INTO notes VALUES (:k)"), {"k": key})  # the application's table
                assert publisher.publish(session, Event(type="note.created", key=key, payload={}))
            assert session.execute(text("SHOW search_path")).scalar() == before  # put back after each publish
            assert session.execute(text("SELECT count(*) FROM notes")).scalar() == 2
    finally:
        engine.dispose()
        publisher.close()
    assert _outbox_keys(db) == ["a", "b"]


def test_publisher_async_writes_into_db_schema_on_a_plain_asyncpg_engine(migrated_database: TestDatabase) -> None:
    db = migrated_database
    publisher = kafkaguard.Publisher(_publish_settings(db))

    async def publish() -> str:
        engine = sa_create_async_engine(db.server.url(driver="postgresql+asyncpg"))
        try:
            async with AsyncSession(engine) as session, session.begin():
                await publisher.publish_async(session, Event(type="note.created", key="x", payload={}))
                return str((await session.execute(text("SHOW search_path"))).scalar())
        finally:
            await engine.dispose()

    try:
        assert db.schema not in asyncio.run(publish())
    finally:
        publisher.close()
    assert _outbox_keys(db) == ["x"]


def test_kafkaguard_engines_find_the_schema_first_and_public_after(migrated_database: TestDatabase) -> None:
    db = migrated_database
    settings = _publish_settings(db)
    engine = kafkaguard.create_engine(settings)
    try:
        with Session(engine) as session, session.begin():
            assert session.execute(text("SHOW search_path")).scalar() == f"{db.schema},public"
            kafkaguard.add_events(session, [Event(type="note.created", key="s", payload={})])
    finally:
        engine.dispose()

    async def add() -> None:
        aengine = kafkaguard.create_async_engine(settings.model_copy(update={"database_url": db.server.url(
            driver="postgresql+asyncpg")}))  # fmt: skip
        try:
            async with AsyncSession(aengine) as session, session.begin():
                await kafkaguard.add_events_async(session, [Event(type="note.created", key="t", payload={})])
        finally:
            await aengine.dispose()

    asyncio.run(add())
    assert _outbox_keys(db) == ["s", "t"]


def test_publisher_on_a_schema_without_tables_says_what_to_run(database: TestDatabase) -> None:
    db = database  # exists, never upgraded
    publisher = kafkaguard.Publisher(_publish_settings(db))
    engine = sqlalchemy.create_engine(db.server.url())
    try:
        with Session(engine) as session, session.begin():
            with pytest.raises(SchemaNotReadyError) as caught:
                publisher.publish(session, Event(type="note.created", key="a", payload={}))
            assert session.execute(text("SELECT 1")).scalar() == 1  # the caller's transaction is intact
    finally:
        engine.dispose()
        publisher.close()
    assert str(caught.value) == (
        f"kafkaguard's tables are missing in schema {db.schema} (outbox): {_missing_line(db.schema)}"
    )


def _missing_line(schema: str) -> str:
    return f"run `kafkaguard db upgrade --schema {schema}`"


@pytest.mark.parametrize("schema_kind", ["not_upgraded", "no_such_schema"])
def test_commands_on_a_schema_without_tables_fail_at_start_in_one_line(
    database: TestDatabase, kafka_bootstrap: str, schema_kind: str
) -> None:
    db = database
    schema = db.schema if schema_kind == "not_upgraded" else f"nosuch_{uuid.uuid4().hex[:8]}"
    common = ["--url", db.server.url(), "--schema", schema]
    commands = {
        "relay": ["relay", *common, "--bootstrap-servers", kafka_bootstrap],
        "consume": ["consume", "tests.integration.async_app:registry", *common, "--bootstrap-servers", kafka_bootstrap,
                    "--group", "g-missing", "--topic", "t-missing"],
        "restore listener": ["restore", "listener", "--once", "--app", "tests.integration.async_app:registry",
                             *common],
        "restore publisher": ["restore", "publisher", "--once", *common],
        "dead-letters replay": ["dead-letters", "replay", "--reset-only", *common],
    }  # fmt: skip
    for name, args in commands.items():
        started = time.monotonic()
        result = run_cli(*args, timeout=60)
        line = assert_one_error_line(result, 1)
        assert f"missing in schema {schema} (" in line and _missing_line(schema) in line, (name, line)
        assert time.monotonic() - started < 30, name


def test_relay_and_worker_apis_refuse_a_schema_without_tables(database: TestDatabase, kafka_bootstrap: str) -> None:
    db = database
    relay = Relay.for_database(
        conninfo=libpq_conninfo(db.server.url(), schema=db.schema),
        schema=db.schema,
        bootstrap=kafka_bootstrap,
        settings=RelaySettings(),
        topics=TopicRegistry(kafka_bootstrap),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
    )
    with pytest.raises(SchemaNotReadyError, match=f"missing in schema {db.schema} "):
        relay.run(threading.Event())

    settings = KafkaguardSettings(
        bootstrap_servers=kafka_bootstrap,
        database_url=db.server.url(driver="postgresql+asyncpg"),
        db_schema=db.schema,
        consumer=ConsumerSettings(group_id="g", topics=("t",)),
    )
    with pytest.raises(SchemaNotReadyError, match="kafka_inbox, kafka_listener_dead_letters, kafkaguard_last_resort"):
        build_worker(settings, async_app.registry)
