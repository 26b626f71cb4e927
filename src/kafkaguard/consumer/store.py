"""SQL of the consumer's transaction: key lock, inbox, blocked check, dead-letter insert.

Statements are built once here and executed by the sync path (``Session``) and the asyncio path
(``AsyncSession``) alike. Connection failures are recognised by :func:`is_connection_error` so the
caller can tell "PostgreSQL is down" (pause, never dead-letter) from a handler's own failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Insert, Select, TextClause, any_, bindparam, exists, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kafkaguard.db.columns import OPEN_STATUSES
from kafkaguard.db.locks import KEY_LOCK_SQLA
from kafkaguard.db.tables import inbox, listener_dead_letters


def lock_key(group: str, key: str) -> TextClause:
    """Transaction-scoped advisory lock on ``key`` in ``group`` (the restore job takes the same)."""
    return text(KEY_LOCK_SQLA).bindparams(scope=group, key=key)


LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtext(:scope), hashtext(u.k))) FROM unnest(CAST(:keys AS text[])) AS u(k)"
)
"""The locks of :func:`lock_key` on every key of the array ``:keys`` in scope ``:scope``, in one
statement, taken in the array's order (a function scan yields its elements in order)."""


def lock_keys(group: str, keys: Sequence[str]) -> tuple[TextClause, dict[str, Any]]:
    """:data:`LOCK_KEYS` and its parameters for ``keys`` in ``group``.

    Pass ``keys`` sorted, so that two transactions locking overlapping keys never deadlock.
    """
    return LOCK_KEYS, {"scope": group, "keys": list(keys)}


def is_duplicate(group: str, event_id: uuid.UUID) -> Select[tuple[bool]]:
    """``SELECT EXISTS`` inbox row of ``(group, event_id)``."""
    return select(exists().where(inbox.c.consumer_group == group, inbox.c.event_id == event_id))


def is_blocked(group: str, key: str) -> Select[tuple[bool]]:
    """``SELECT EXISTS`` open listener dead letter of ``key`` in ``group`` (OPEN_STATUSES)."""
    t = listener_dead_letters
    return select(exists().where(t.c.consumer_group == group, t.c.key == key, t.c.status.in_(OPEN_STATUSES)))


def _blocked_keys() -> Select[tuple[str | None]]:
    t = listener_dead_letters
    keys = bindparam("keys", type_=ARRAY(t.c.key.type))
    return (
        select(t.c.key)
        .where(t.c.consumer_group == bindparam("group"), t.c.key == any_(keys), t.c.status.in_(OPEN_STATUSES))
        .distinct()
    )


BLOCKED_KEYS = _blocked_keys()
"""Keys among ``:keys`` (an array) with an open listener dead letter in ``:group``.

The keys travel as one array (``key = ANY(:keys)``), not one parameter each, so the SQL text is
the same for every chunk: compiled once by SQLAlchemy, prepared by psycopg."""


def blocked_keys(group: str, keys: Sequence[str]) -> tuple[Select[tuple[str | None]], dict[str, Any]]:
    """:data:`BLOCKED_KEYS` and its parameters for ``keys`` in ``group``."""
    return BLOCKED_KEYS, {"group": group, "keys": list(keys)}


def insert_inbox(rows: Sequence[dict[str, Any]]) -> Insert:
    """Insert inbox rows, skipping existing ones; ``RETURNING event_id`` names the new ones."""
    return pg_insert(inbox).values(list(rows)).on_conflict_do_nothing().returning(inbox.c.event_id)


_INBOX_ARRAY_COLUMNS = ("event_id", "type", "key", "topic", "partition", "offset")


def _insert_inbox_arrays() -> Insert:
    """Insert many inbox rows given as one array per column (see :func:`inbox_arrays`), skipping
    existing ones; ``RETURNING event_id`` names the new ones.

    One short statement whatever the row count: SQLAlchemy compiles it once and psycopg prepares
    it, where a multi-row ``VALUES`` list is a new SQL text per size that psycopg parses every time
    (that was 40 % of a 500-event chunk's time).
    """
    arrays = [bindparam(f"{name}s", type_=ARRAY(inbox.c[name].type)) for name in _INBOX_ARRAY_COLUMNS]
    rows = func.unnest(*arrays).table_valued(*_INBOX_ARRAY_COLUMNS).render_derived()
    group = bindparam("consumer_group", type_=inbox.c.consumer_group.type)
    source = select(group, *(rows.c[name] for name in _INBOX_ARRAY_COLUMNS))
    return (
        pg_insert(inbox)
        .from_select(["consumer_group", *_INBOX_ARRAY_COLUMNS], source)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )


INSERT_INBOX_ARRAYS = _insert_inbox_arrays()


def inbox_arrays(group: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of :data:`INSERT_INBOX_ARRAYS` for ``rows`` (dicts as :func:`insert_inbox` takes)."""
    params: dict[str, Any] = {f"{name}s": [r[name] for r in rows] for name in _INBOX_ARRAY_COLUMNS}
    params["consumer_group"] = group
    return params


def insert_dead_letter(row: dict[str, Any]) -> Insert:
    """Insert one listener dead letter unless its position is stored already (a redelivery)."""
    return (
        pg_insert(listener_dead_letters)
        .values(**row)
        .on_conflict_do_nothing(constraint="uq_listener_dl_position")
        .returning(listener_dead_letters.c.id)
    )


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) says the database connection failed, not the statement."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
            return True
        if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        seen = seen.__cause__
    return False
