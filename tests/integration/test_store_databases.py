"""Engines built by kafkaguard on both databases (issue 18): the same URL-and-schema rule finds
kafkaguard's migrated tables on PostgreSQL (a schema first on the search_path) and on MariaDB
(the schema is a database), sync and asyncio."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from kafkaguard.db.engine import async_engine, dialect_name, sync_engine
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase


def test_engines_find_the_migrated_tables_on_both_databases(store_database: TestDatabase | TestMariaDatabase) -> None:
    assert dialect_name(store_database.url) == store_database.dialect
    engine = sync_engine(store_database.url, schema=store_database.schema)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == ("postgresql" if store_database.dialect == "postgresql" else "mysql")
            current = "SELECT current_schema()" if store_database.dialect == "postgresql" else "SELECT DATABASE()"
            assert conn.execute(text(current)).scalar_one() == store_database.schema
            assert conn.execute(text("SELECT count(*) FROM outbox")).scalar_one() == 0
    finally:
        engine.dispose()

    async def count_inbox() -> int:
        aengine = async_engine(store_database.url, schema=store_database.schema)
        try:
            async with aengine.connect() as conn:
                return int((await conn.execute(text("SELECT count(*) FROM kafka_inbox"))).scalar_one())
        finally:
            await aengine.dispose()

    assert asyncio.run(count_inbox()) == 0


def test_stores_not_yet_on_mariadb_refuse_its_engine_in_one_line(migrated_mariadb_database: TestMariaDatabase) -> None:
    """A MariaDB engine given to a PostgreSQL-only store fails at once, naming the store, not later
    with a syntax error from the first PostgreSQL statement."""
    from kafkaguard.errors import ConfigurationError
    from kafkaguard.stores.inbox_postgres import PostgresConsumerStore
    from kafkaguard.stores.publisher_dead_letters import PostgresPublisherDeadLetters

    engine = sync_engine(migrated_mariadb_database.url)
    try:
        with pytest.raises(
            ConfigurationError, match="the consumer's inbox store runs on PostgreSQL only .* on MariaDB"
        ):
            PostgresConsumerStore(engine)
        with pytest.raises(ConfigurationError, match="publisher dead-letter store runs on PostgreSQL only"):
            PostgresPublisherDeadLetters(engine)
    finally:
        engine.dispose()
