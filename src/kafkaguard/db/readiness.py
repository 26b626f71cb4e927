"""Check at start that kafkaguard's tables exist where a component will look for them.

Without the check a schema that was never upgraded (or a mistyped ``--schema``) surfaces later as
``relation "outbox" does not exist`` inside a transaction, or worse (the relay's lock namespaces
come from ``current_schema()``, which is NULL when no schema of the search_path exists). With it,
every component fails before its first unit of work with one line naming the schema and the
command that creates the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kafkaguard.db import columns as C
from kafkaguard.db.engine import quote_ident
from kafkaguard.errors import SchemaNotReadyError

RELAY_TABLES = (C.OUTBOX, C.PUBLISHER_DEAD_LETTERS)
PUBLISHER_TABLES = (C.OUTBOX, C.PUBLISHER_DEAD_LETTERS)
CONSUMER_TABLES = (C.INBOX, C.LISTENER_DEAD_LETTERS, C.LAST_RESORT, C.BEGIN_EVENT)
RESTORE_TABLES = (C.INBOX, C.LISTENER_DEAD_LETTERS, C.PUBLISHER_DEAD_LETTERS, C.BEGIN_EVENT)

MISSING_SQL = (
    "SELECT coalesce(CAST(:schema AS text), current_schema()) AS schema,"
    " ARRAY(SELECT t FROM unnest(CAST(:tables AS text[])) AS t"
    "       WHERE to_regclass(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), t)) IS NULL"
    "         AND to_regproc(format('%I.%I', coalesce(CAST(:schema AS text), current_schema()), t)) IS NULL"
    "       ) AS missing"
)
"""The schema looked in (the given one, else the search_path's first existing schema, NULL if none)
and which of ``:tables`` it lacks (a name may also be a function: ``kafkaguard_begin_event``)."""

MISSING_SQL_PSYCOPG = MISSING_SQL.replace("%I", "%%I").replace(":schema", "%(schema)s").replace(":tables", "%(tables)s")


def problem(schema: str | None, looked_in: str | None, missing: Sequence[str]) -> SchemaNotReadyError | None:
    """The error for ``missing`` tables of ``looked_in`` (``schema``: what the user configured), or None."""
    if looked_in is not None and not missing:
        return None
    upgrade = f"kafkaguard db upgrade --schema {quote_ident(schema)}" if schema else "kafkaguard db upgrade"
    if looked_in is None:  # no schema of the search_path exists
        where = "no schema of the connection's search_path exists"
        return SchemaNotReadyError(f"kafkaguard's tables are missing: {where}; run `{upgrade}` (or set db_schema)")
    what = ", ".join(missing)
    return SchemaNotReadyError(
        f"kafkaguard's tables are missing in schema {quote_ident(looked_in)} ({what}): run `{upgrade}`"
        + ("" if schema else " (or set KAFKAGUARD_DB_SCHEMA / --schema to the schema that has them)")
    )


def _check(row: Any, schema: str | None) -> None:
    looked_in = row[0] if row is not None else None
    missing = list(row[1] or []) if row is not None else []
    err = problem(schema, looked_in, missing)
    if err is not None:
        raise err


MARIADB_TABLES_SQL = "SELECT DATABASE(), table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
"""MariaDB: the connection's database (kafkaguard's schema there) and its tables."""


def _on_mariadb(conn: Any) -> bool:
    dialect = getattr(conn, "dialect", None)
    if dialect is None and hasattr(conn, "get_bind"):
        dialect = conn.get_bind().dialect
    return getattr(dialect, "name", "") in ("mysql", "mariadb")


def _mariadb_row(found: Iterable[Any], tables: Iterable[str]) -> tuple[str | None, list[str]]:
    rows = list(found)
    database = str(rows[0][0]) if rows and rows[0][0] is not None else None
    present = {str(r[1]) for r in rows}
    # The PostgreSQL-only function of migration 0003 has no MariaDB twin (the adapter runs its steps).
    return database, [t for t in tables if t not in present and t != C.BEGIN_EVENT]


def require_tables(conn: Any, schema: str | None, tables: Iterable[str]) -> None:
    """Raise :class:`SchemaNotReadyError` unless ``tables`` exist in ``schema`` (None: the schema the
    search_path of ``conn``, a SQLAlchemy ``Connection`` or ``Session``, resolves to; on MariaDB the
    connection's database)."""
    from sqlalchemy import text

    if _on_mariadb(conn):
        _check(_mariadb_row(conn.execute(text(MARIADB_TABLES_SQL)), list(tables)), schema)
        return
    row = conn.execute(text(MISSING_SQL), {"schema": schema, "tables": list(tables)}).first()
    _check(row, schema)


async def require_tables_async(conn: Any, schema: str | None, tables: Iterable[str]) -> None:
    """:func:`require_tables` on an ``AsyncConnection`` or ``AsyncSession``."""
    from sqlalchemy import text

    if _on_mariadb(conn.sync_connection if hasattr(conn, "sync_connection") else conn.sync_session):
        _check(_mariadb_row(await conn.execute(text(MARIADB_TABLES_SQL)), list(tables)), schema)
        return
    row = (await conn.execute(text(MISSING_SQL), {"schema": schema, "tables": list(tables)})).first()
    _check(row, schema)


def require_tables_psycopg(conn: Any, schema: str | None, tables: Iterable[str]) -> None:
    """:func:`require_tables` on a raw psycopg connection (the relay)."""
    row = conn.execute(MISSING_SQL_PSYCOPG, {"schema": schema, "tables": list(tables)}).fetchone()
    _check(row, schema)


def require_engine_tables(
    engine: Any, schema: str | None, tables: Iterable[str], *, if_reachable: bool = False
) -> None:
    """:func:`require_tables` on a fresh connection of a sync ``engine``.

    ``if_reachable``: a database that cannot be reached now is not an error here (the component's
    own outage handling waits for it); only a database that answers without the tables is.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        conn = engine.connect()
    except (OperationalError, InterfaceError):
        if if_reachable:
            return
        raise
    with conn:
        require_tables(conn, schema, tables)


async def require_async_engine_tables(engine: Any, schema: str | None, tables: Iterable[str]) -> None:
    """:func:`require_tables` on a fresh connection of an ``AsyncEngine``."""
    async with engine.connect() as conn:
        await require_tables_async(conn, schema, tables)
