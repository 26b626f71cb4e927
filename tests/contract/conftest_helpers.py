"""Stores for the contract suite: the in-memory fake and the PostgreSQL adapter on a fresh schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kafkaguard.db.engine import sync_engine
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.inbox_postgres import PostgresConsumerStore
from kafkaguard.testing import MemoryConsumerStore


def make_store(request: pytest.FixtureRequest) -> Iterator[ConsumerStore]:
    """``request.param``: ``fake``, ``postgres`` (the real server, kafkaguard's migrations applied)
    or ``mongo`` (FerretDB, the store's indexes ensured)."""
    if request.param == "fake":
        yield MemoryConsumerStore()
        return
    if request.param == "mongo":
        from kafkaguard.stores.mongo_consumer import MongoConsumerStore

        store = MongoConsumerStore(request.getfixturevalue("mongo_database"))
        store.ensure_indexes()
        yield store
        return
    db = request.getfixturevalue("migrated_database")
    engine = sync_engine(db.server.url(), schema=db.schema, pool_size=2)
    try:
        yield PostgresConsumerStore(engine)
    finally:
        engine.dispose()
