"""Engines built by kafkaguard on both databases (issue 18): the same URL-and-schema rule finds
kafkaguard's migrated tables on PostgreSQL (a schema first on the search_path) and on MariaDB
(the schema is a database), sync and asyncio."""

from __future__ import annotations

import asyncio

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
