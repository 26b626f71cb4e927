"""The transaction-per-event path on PostgreSQL: ``kafkaguard_begin_event`` and engines that test a
pooled connection only after it rested (:func:`kafkaguard.db.engine.ping_when_idle`)."""

from __future__ import annotations

from typing import Any

import psycopg

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import ping_when_idle, sync_engine
from kafkaguard.envelope import Event
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing.fixtures import TestDatabase
from tests.integration import consumer_app as app


def _record(event: Event, offset: int) -> Record:
    return Record("t", 0, offset, event.key.encode(), event.payload_bytes(), list(event.kafka_headers()))


def test_a_connection_lost_between_events_costs_no_attempt_and_no_dead_letter(migrated_database: TestDatabase) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    engine = sync_engine(db.server.url(), schema=db.schema, pool_size=1, pool_pre_ping=False)
    ping_when_idle(engine, idle=3600.0)  # never tested at checkout: the lost connection is handed out
    # max_attempts=1: were the lost connection taken for the handler's failure, the event would be dead-lettered.
    settings = ConsumerSettings(group_id=app.new_group(), retry=RetryPolicy(max_attempts=1))
    applier = Applier(engine, app.registry, settings)
    try:
        first = Event(type="test.applied", key="k", payload={"seq": 0})
        assert applier.process(_record(first, 0)) is Outcome.APPLIED
        with engine.connect() as conn:  # the pool's one connection
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(db.conninfo, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        second = Event(type="test.applied", key="k", payload={"seq": 1})
        assert applier.process(_record(second, 1)) is Outcome.APPLIED
        assert applier.process(_record(second, 1)) is Outcome.DUPLICATE
    finally:
        applier.close()
        engine.dispose()
    with psycopg.connect(db.conninfo) as conn:
        assert conn.execute("SELECT seq FROM effects ORDER BY id").fetchall() == [(0,), (1,)]
        assert conn.execute("SELECT count(*) FROM kafka_listener_dead_letters").fetchone() == (0,)


def test_async_engines_test_a_rested_connection_at_checkout_and_replace_a_dead_one(
    migrated_database: TestDatabase,
) -> None:
    import asyncio

    from sqlalchemy import text

    from kafkaguard.db.engine import async_engine

    db = migrated_database
    for driver in ("postgresql+psycopg", "postgresql+asyncpg"):
        engine = async_engine(db.server.url(driver=driver), schema=db.schema, pool_size=1)
        assert engine.sync_engine.pool._pre_ping is False
        ping_when_idle(engine.sync_engine, idle=0.0)  # as if every checkout came after a rest

        async def backend_pid(e: Any = engine) -> int:
            async with e.connect() as conn:
                return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())

        async def scenario() -> tuple[int, int]:
            first = await backend_pid()
            with psycopg.connect(db.conninfo, autocommit=True) as admin:
                # with a timeout: returns once the backend is gone, so the checkout cannot race its exit
                assert admin.execute("SELECT pg_terminate_backend(%s, 5000)", (first,)).fetchone() == (True,)
            return first, await backend_pid()  # the test at checkout found it dead: a new connection

        try:
            first, second = asyncio.run(scenario())
        finally:
            asyncio.run(engine.dispose())
        assert first != second, driver
