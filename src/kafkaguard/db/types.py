"""Column types that are PostgreSQL's own on PostgreSQL and their MariaDB forms on MariaDB.

The tables of :mod:`kafkaguard.db.tables` are declared once; on MariaDB (SQLAlchemy's ``mysql`` /
``mariadb`` dialects) a column takes the form the migrations created there
(:mod:`kafkaguard.migrations.portable`):

- :func:`uuid_type`: ``uuid`` / ``CHAR(36)`` in the text form with dashes (SQLAlchemy's own ``Uuid``
  would write 32 hex digits without them, which Debezium's router and kafkaguard's SQL would not match);
- :func:`json_type`: ``jsonb`` / ``JSON``;
- :func:`utc_type`: ``timestamptz`` / ``DATETIME(6)`` holding UTC: an aware value is written as its UTC
  wall time and read back as an aware UTC value, so both databases give the same ``datetime``;
  :class:`utc_now` is the time now to compare them with.

On PostgreSQL the types are exactly the ones declared before (``with_variant`` changes MariaDB only),
so the PostgreSQL paths bind and read as they always did.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

MARIADB_DIALECTS = ("mysql", "mariadb")


class MariaDbUuid(TypeDecorator[uuid.UUID]):
    """A UUID as ``CHAR(36)`` text with dashes; reads back a :class:`uuid.UUID`."""

    impl = mysql.CHAR(36)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        return None if value is None else uuid.UUID(str(value))


class MariaDbUtc(TypeDecorator[datetime]):
    """An aware ``datetime`` as ``DATETIME(6)`` UTC wall time; reads back an aware UTC value."""

    impl = mysql.DATETIME(fsp=6)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if not isinstance(value, datetime):
            return None if value is None else value  # not a datetime (e.g. a SQL expression): as given
        if value.tzinfo is None:  # naive: taken as UTC already (what the column holds)
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if isinstance(value, datetime) else None


def uuid_type() -> TypeEngine[uuid.UUID]:
    """``uuid`` on PostgreSQL, ``CHAR(36)`` on MariaDB (:class:`MariaDbUuid`)."""
    return UUID(as_uuid=True).with_variant(MariaDbUuid(), *MARIADB_DIALECTS)


def json_type() -> TypeEngine[Any]:
    """``jsonb`` on PostgreSQL, ``JSON`` on MariaDB."""
    return JSONB().with_variant(mysql.JSON(), *MARIADB_DIALECTS)


def utc_type() -> TypeEngine[datetime]:
    """``timestamptz`` on PostgreSQL, ``DATETIME(6)`` UTC on MariaDB (:class:`MariaDbUtc`)."""
    return DateTime(timezone=True).with_variant(MariaDbUtc(), *MARIADB_DIALECTS)


class utc_now(FunctionElement[datetime]):
    """The database's time now with microseconds, for comparisons with :func:`utc_type` columns:
    ``now()`` on PostgreSQL, ``UTC_TIMESTAMP(6)`` on MariaDB (whose ``NOW()`` has whole seconds and
    the session's zone, so a record due this second would wait for the next one)."""

    type = DateTime(timezone=True)
    inherit_cache = True


@compiles(utc_now)
def _utc_now_default(element: utc_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "now()"


@compiles(utc_now, "mysql")
@compiles(utc_now, "mariadb")
def _utc_now_mariadb(element: utc_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "UTC_TIMESTAMP(6)"
