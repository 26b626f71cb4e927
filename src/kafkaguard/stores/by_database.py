"""Which adapter a database gets: one URL (or the engine built from it) decides every store.

PostgreSQL gets the psycopg adapters (advisory locks, LISTEN/NOTIFY, ``jsonb``); MariaDB the PyMySQL
ones (named locks, key-lock rows, polling). Everything above the stores is the same code on both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.db.engine import MARIADB_BACKENDS, dialect_name, libpq_conninfo
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.outbox import OutboxStore

if TYPE_CHECKING:
    from kafkaguard.stores.publisher_dead_letters import PostgresPublisherDeadLetters
    from kafkaguard.stores.publisher_dead_letters_mariadb import MariaDbPublisherDeadLetters


def on_mariadb(engine: Engine | None) -> bool:
    """Whether ``engine`` is on MariaDB (None: no engine, taken as PostgreSQL's writer-only stores)."""
    return engine is not None and engine.dialect.name in MARIADB_BACKENDS


def outbox_store_for(url: str, *, schema: str | None = None) -> OutboxStore:
    """The relay's :class:`~kafkaguard.stores.outbox.OutboxStore` for ``url``: psycopg's
    :class:`~kafkaguard.stores.outbox.PostgresOutbox` on PostgreSQL (LISTEN/NOTIFY, advisory locks),
    :class:`~kafkaguard.stores.outbox_mariadb.MariaDbOutbox` on MariaDB (named locks, polling).

    Raises :class:`~kafkaguard.errors.ConfigurationError` for a URL of another database.
    """
    if dialect_name(url) == "mariadb":
        from kafkaguard.stores.outbox_mariadb import MariaDbOutbox  # the mariadb extra: PyMySQL

        return MariaDbOutbox(url, schema=schema)
    from kafkaguard.stores.outbox import PostgresOutbox

    return PostgresOutbox(libpq_conninfo(url, schema=schema), schema=schema)


def publisher_dead_letters_for(engine: Engine | None) -> PostgresPublisherDeadLetters | MariaDbPublisherDeadLetters:
    """The publisher dead-letter store (writer and restore side) on ``engine``'s database."""
    if on_mariadb(engine):
        from kafkaguard.stores.publisher_dead_letters_mariadb import MariaDbPublisherDeadLetters

        return MariaDbPublisherDeadLetters(engine)
    from kafkaguard.stores.publisher_dead_letters import PostgresPublisherDeadLetters

    return PostgresPublisherDeadLetters(engine)


def consumer_store_for(engine: Engine, async_engine: AsyncEngine | None = None) -> ConsumerStore:
    """The consumer's (and the listener restore job's) store on ``engine``'s database: inbox, key
    locks, listener dead letters (``async_engine``: the same database, for ``async def`` handlers)."""
    if on_mariadb(engine):
        from kafkaguard.stores.inbox_mariadb import MariaDbConsumerStore

        return MariaDbConsumerStore(engine, async_engine)
    from kafkaguard.stores.inbox_postgres import PostgresConsumerStore

    return PostgresConsumerStore(engine, async_engine)
