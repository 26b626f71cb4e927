"""Stores for the contract suite: the in-memory fake, and the PostgreSQL, MariaDB and MongoDB adapters
on a fresh schema / database of the real servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kafkaguard.db.engine import sync_engine
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.inbox_mariadb import MariaDbConsumerStore
from kafkaguard.stores.inbox_postgres import PostgresConsumerStore
from kafkaguard.testing import MemoryConsumerStore


def make_store(request: pytest.FixtureRequest) -> Iterator[ConsumerStore]:
    """``request.param``: ``fake``, ``postgres`` or ``mariadb`` (the real server, kafkaguard's
    migrations applied) or ``mongo`` (FerretDB, the store's indexes ensured)."""
    if request.param == "fake":
        yield MemoryConsumerStore()
        return
    if request.param == "mongo":
        from kafkaguard.stores.mongo_consumer import MongoConsumerStore

        store = MongoConsumerStore(request.getfixturevalue("mongo_database"))
        store.ensure_indexes()
        yield store
        return
    if request.param == "mariadb":
        maria = request.getfixturevalue("migrated_mariadb_database")
        engine = sync_engine(maria.url, schema=maria.schema, pool_size=2)
        try:
            yield MariaDbConsumerStore(engine)
        finally:
            engine.dispose()
        return
    db = request.getfixturevalue("migrated_database")
    engine = sync_engine(db.server.url(), schema=db.schema, pool_size=2)
    try:
        yield PostgresConsumerStore(engine)
    finally:
        engine.dispose()
