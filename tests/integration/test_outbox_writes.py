"""Outbox rows commit and roll back with the caller's transaction (sync and asyncio sessions)."""

import psycopg
import pytest
from sqlalchemy.orm import Session

from kafkaguard.db.engine import async_engine, sync_engine
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_event, add_event_async
from kafkaguard.testing.fixtures import TestDatabase


def count(db: TestDatabase) -> int:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return int(row[0]) if row else -1


def test_sync_session_commit_and_rollback(migrated_database: TestDatabase) -> None:
    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    with Session(engine) as session, session.begin():
        add_event(session, Event(type="post.created", key="p1", payload={"n": 1}))
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        add_event(session, Event(type="post.created", key="p2", payload={"n": 2}))
        raise RuntimeError("business write failed")
    assert count(migrated_database) == 1
    engine.dispose()


async def test_async_session_commit(migrated_database: TestDatabase) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    engine = async_engine(migrated_database.server.url(), schema=migrated_database.schema)
    async with AsyncSession(engine) as session, session.begin():
        await add_event_async(session, Event(type="post.created", key="p1", payload={"n": 1}))
    await engine.dispose()
    with psycopg.connect(migrated_database.conninfo) as conn:
        row = conn.execute("SELECT aggregatetype, aggregateid, type, payload FROM outbox").fetchone()
    assert row == ("post", "p1", "post.created", {"n": 1})


def test_publisher_facade_outbox_mode_and_debezium_insert_then_delete(migrated_database: TestDatabase) -> None:
    from sqlalchemy import text

    from kafkaguard import Publisher, PublishOutcome
    from kafkaguard.settings import KafkaguardSettings

    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    plain = Publisher(KafkaguardSettings(database_url=migrated_database.url))
    debezium = Publisher(KafkaguardSettings(database_url=migrated_database.url, relay={"kind": "debezium"}))
    event = Event(type="post.created", key="p1", payload={"n": 1})
    with Session(engine) as session, session.begin():
        assert plain.publish(session, event) is PublishOutcome.OUTBOX
    assert count(migrated_database) == 1
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE seen (id uuid)")
        conn.execute(
            "CREATE FUNCTION remember() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO seen VALUES (NEW.id); RETURN NULL; END $$"
        )
        conn.execute("CREATE TRIGGER remember AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION remember()")
    second = Event(type="post.created", key="p1", payload={"n": 2})
    with Session(engine) as session, session.begin():
        assert debezium.publish(session, second) is PublishOutcome.OUTBOX
    assert count(migrated_database) == 1  # inserted (the trigger saw it, as the WAL does), then deleted
    with Session(engine) as session:
        assert session.execute(text("SELECT count(*) FROM seen")).scalar_one() == 1
    plain.close()
    debezium.close()
    engine.dispose()
