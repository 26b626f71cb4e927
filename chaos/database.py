"""The database a chaos run writes to and reads from: PostgreSQL or MariaDB, behind one small class.

A run owns one *namespace* on each server: a schema on PostgreSQL, a database on MariaDB (kafkaguard's
``schema`` setting names either, see docs/operations/mariadb.md). Everything the suite itself reads
(attempts, committed writes, the projection, dead-letter and outbox counts) goes through
:meth:`ChaosDatabase.rows` over a short-lived DB-API connection with a short connect timeout, so a
query during a database outage fails fast instead of hanging the suite.

The workload's own tables differ only where the two dialects do (uuid, text keys, upserts); the SQL
of both lives here, next to each other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import closing
from typing import Any, Literal

import psycopg

from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer

Dialect = Literal["postgresql", "mariadb"]
DIALECTS: tuple[Dialect, ...] = ("postgresql", "mariadb")

_PG_PRODUCER_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_attempts (i integer PRIMARY KEY, akey text NOT NULL, seq integer NOT NULL,"
    " event_id uuid NOT NULL, rollback boolean NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chaos_writes (i integer PRIMARY KEY, akey text NOT NULL, seq integer NOT NULL,"
    " event_id uuid NOT NULL UNIQUE)",
)
_PG_CONSUMER_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS chaos_apply_order",
    "CREATE TABLE IF NOT EXISTS chaos_projection (event_id uuid PRIMARY KEY, akey text NOT NULL,"
    " seq integer NOT NULL, apply_count integer NOT NULL DEFAULT 1,"
    " applied_order bigint NOT NULL DEFAULT nextval('chaos_apply_order'))",
)
# MariaDB: uuids as CHAR(36) like kafkaguard's own tables; keys need a length to be indexed; a
# SEQUENCE (10.3+) gives the order of first applications exactly as on PostgreSQL.
_MARIADB_PRODUCER_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_attempts (i integer PRIMARY KEY, akey varchar(64) NOT NULL,"
    " seq integer NOT NULL, event_id char(36) NOT NULL, rollback boolean NOT NULL) ENGINE=InnoDB",
    "CREATE TABLE IF NOT EXISTS chaos_writes (i integer PRIMARY KEY, akey varchar(64) NOT NULL,"
    " seq integer NOT NULL, event_id char(36) NOT NULL UNIQUE) ENGINE=InnoDB",
)
_MARIADB_CONSUMER_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS chaos_apply_order",
    "CREATE TABLE IF NOT EXISTS chaos_projection (event_id char(36) PRIMARY KEY, akey varchar(64) NOT NULL,"
    " seq integer NOT NULL, apply_count integer NOT NULL DEFAULT 1,"
    " applied_order bigint NOT NULL DEFAULT nextval(chaos_apply_order)) ENGINE=InnoDB",
)

RECORD_ATTEMPT = {
    "postgresql": "INSERT INTO chaos_attempts VALUES (:i, :key, :seq, :eid, :rb) ON CONFLICT DO NOTHING",
    "mariadb": "INSERT IGNORE INTO chaos_attempts VALUES (:i, :key, :seq, :eid, :rb)",
}
"""The writer's attempt record (a restarted writer may record an attempt again: kept once)."""

UPSERT_PROJECTION = {
    "postgresql": "INSERT INTO chaos_projection (event_id, akey, seq) VALUES (:event_id, :key, :seq) "
    "ON CONFLICT (event_id) DO UPDATE SET apply_count = chaos_projection.apply_count + 1",
    "mariadb": "INSERT INTO chaos_projection (event_id, akey, seq) VALUES (:event_id, :key, :seq) "
    "ON DUPLICATE KEY UPDATE apply_count = apply_count + 1",
}
"""The consumer's handler: first application inserts, each repeat adds one to ``apply_count``."""


def dialect_of(url: str) -> Dialect:
    """``postgresql`` or ``mariadb`` from a SQLAlchemy URL (the writer and the handler know only the URL)."""
    return "mariadb" if url.startswith(("mysql", "mariadb")) else "postgresql"


class ChaosDatabase:
    """One database server of a chaos suite and what the suite does on it."""

    def __init__(self, server: PostgresServer | MariaDbServer) -> None:
        self.server = server
        self.dialect: Dialect = "mariadb" if isinstance(server, MariaDbServer) else "postgresql"

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """The driver's error classes (what a query during an outage raises)."""
        if self.dialect == "mariadb":
            import pymysql

            return (pymysql.Error,)
        return (psycopg.Error,)

    def url(self) -> str:
        """The SQLAlchemy URL the run's processes get (the namespace comes from ``KAFKAGUARD_DB_SCHEMA``)."""
        return self.server.url()

    def quote(self, name: str) -> str:
        """``name`` as an identifier (``key`` is a reserved word on MariaDB)."""
        return f"`{name}`" if self.dialect == "mariadb" else f'"{name}"'

    def _connect(self, namespace: str | None, timeout: int) -> Any:
        if isinstance(self.server, MariaDbServer):
            import pymysql

            kwargs = {**self.server.connect_kwargs(database=namespace), "connect_timeout": timeout}
            return pymysql.connect(**kwargs, autocommit=True)
        conninfo = self.server.conninfo()
        if namespace is not None:
            conninfo += f" options=-csearch_path={namespace}"
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=timeout)

    def rows(self, namespace: str | None, sql: str, *, timeout: int = 10) -> list[tuple[Any, ...]]:
        """Run ``sql`` (constant text, no parameters) in ``namespace``; return its rows (none for DDL)."""
        with closing(self._connect(namespace, timeout)) as conn, closing(conn.cursor()) as cur:
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description is not None else []

    def count(self, namespace: str, sql: str, *, timeout: int = 10) -> int:
        """The first column of the first row of ``sql`` as an int (0 for none or NULL)."""
        found = self.rows(namespace, sql, timeout=timeout)
        return int(found[0][0]) if found and found[0][0] is not None else 0

    def create(self, namespace: str) -> None:
        """An empty namespace (kafkaguard's migrations, then :meth:`run_ddl`, fill it)."""
        if self.dialect == "mariadb":
            self.rows(None, f"CREATE DATABASE `{namespace}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        else:
            self.rows(None, f'CREATE SCHEMA "{namespace}"')

    def run_ddl(self, namespace: str, ddl: Sequence[str]) -> None:
        """Run each statement of ``ddl`` in ``namespace``."""
        for statement in ddl:
            self.rows(namespace, statement)

    def drop(self, namespace: str) -> None:
        """Remove ``namespace`` and everything in it (no error if it is gone)."""
        if self.dialect == "mariadb":
            self.rows(None, f"DROP DATABASE IF EXISTS `{namespace}`")
        else:
            self.rows(None, f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')

    @property
    def producer_ddl(self) -> tuple[str, ...]:
        """The writer's tables in this dialect."""
        return _MARIADB_PRODUCER_DDL if self.dialect == "mariadb" else _PG_PRODUCER_DDL

    @property
    def consumer_ddl(self) -> tuple[str, ...]:
        """The consumer's projection in this dialect."""
        return _MARIADB_CONSUMER_DDL if self.dialect == "mariadb" else _PG_CONSUMER_DDL

    def heal(self) -> None:
        """Start the server again if a scenario left it down."""
        if not self.server.is_running():
            self.server.start()


def as_uuid(value: Any) -> uuid.UUID:
    """An event id as read back: ``uuid`` on PostgreSQL, ``CHAR(36)`` text on MariaDB."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
