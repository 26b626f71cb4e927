"""SQL of the consumer's transaction: key lock, inbox, blocked check, dead-letter insert.

Statements are built once here and executed by the sync path (``Session``) and the asyncio path
(``AsyncSession``) alike. Connection failures are recognised by :func:`is_connection_error` so the
caller can tell "PostgreSQL is down" (pause, never dead-letter) from a handler's own failure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import JSON, Insert, Select, Text, TextClause, bindparam, cast, column, exists, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kafkaguard.db.columns import OPEN_STATUSES
from kafkaguard.db.locks import KEY_LOCK_SQLA
from kafkaguard.db.tables import inbox, last_resort, listener_dead_letters


def lock_key(group: str, key: str) -> TextClause:
    """Transaction-scoped advisory lock on ``key`` in ``group`` (the restore job takes the same)."""
    return text(KEY_LOCK_SQLA).bindparams(scope=group, key=key)


def applied_before(group: str, event_id: uuid.UUID) -> Select[tuple[Any, Any, Any, Any]]:
    """The inbox row of ``(group, event_id)`` if there is one: content hash and where it was read.

    No row: the event is new. A row: a duplicate, unless its ``content_hash`` (set, and) differs
    from the new message's (an id conflict; see :mod:`kafkaguard.consumer.identity`).
    """
    return select(inbox.c.content_hash, inbox.c.topic, inbox.c.partition, inbox.c.offset).where(
        inbox.c.consumer_group == group, inbox.c.event_id == event_id
    )


def hashes_of(group: str, event_ids: Sequence[uuid.UUID]) -> Select[tuple[Any, Any]]:
    """``(event_id, content_hash)`` of the inbox rows of ``event_ids`` in ``group`` (batch mode's duplicates)."""
    return select(inbox.c.event_id, inbox.c.content_hash).where(
        inbox.c.consumer_group == group, inbox.c.event_id.in_(list(event_ids))
    )


def is_blocked(group: str, key: str) -> Select[tuple[bool]]:
    """``SELECT EXISTS`` open listener dead letter of ``key`` in ``group`` (OPEN_STATUSES)."""
    t = listener_dead_letters
    return select(exists().where(t.c.consumer_group == group, t.c.key == key, t.c.status.in_(OPEN_STATUSES)))


def insert_inbox(rows: Sequence[dict[str, Any]]) -> Insert:
    """Insert inbox rows, skipping existing ones; ``RETURNING event_id`` names the new ones."""
    return pg_insert(inbox).values(list(rows)).on_conflict_do_nothing().returning(inbox.c.event_id)


# -- batch mode: a chunk's keys and inbox rows travel as one JSON text parameter each -------------
# One parameter whatever the chunk size, so every statement below has one SQL text: compiled once by
# SQLAlchemy, prepared by psycopg. JSON rather than arrays: json.dumps and PostgreSQL's JSON parser
# are C, where psycopg dumps an array element by element in Python (a multi-row VALUES list was
# worse: a new SQL text per size, parsed by psycopg every time — 40 % of a chunk's time).
_JSON_TEXT = Text()
_INBOX_BATCH_COLUMNS = ("event_id", "type", "key", "topic", "partition", "offset")
# content_hash travels as hex text in the JSON and is decoded to bytea in the statement.


def _keys_of(param: str) -> Any:
    elements = func.json_array_elements_text(cast(bindparam(param, type_=_JSON_TEXT), JSON))
    return elements.table_valued("k").render_derived()


def _lock_keys() -> Select[tuple[int]]:
    k = _keys_of("keys")
    return select(func.count(func.pg_advisory_xact_lock(func.hashtext(bindparam("scope")), func.hashtext(k.c.k))))


LOCK_KEYS = _lock_keys()
"""The locks of :func:`lock_key` on every key of the JSON array ``:keys`` in scope ``:scope``, in one
statement, taken in the array's order (a function scan yields its elements in order)."""


def _blocked_keys() -> Select[tuple[str | None]]:
    t = listener_dead_letters
    k = _keys_of("keys")
    return (
        select(t.c.key)
        .where(t.c.consumer_group == bindparam("group"), t.c.key.in_(select(k.c.k)), t.c.status.in_(OPEN_STATUSES))
        .distinct()
    )


BLOCKED_KEYS = _blocked_keys()
"""Keys among the JSON array ``:keys`` with an open listener dead letter in ``:group``."""


def _insert_inbox_batch() -> Insert:
    cols = [column(name, inbox.c[name].type) for name in _INBOX_BATCH_COLUMNS]
    cols.append(column("content_hash", Text()))
    rows = func.json_to_recordset(cast(bindparam("rows", type_=_JSON_TEXT), JSON)).table_valued(*cols)
    rows = rows.render_derived(with_types=True)
    source = select(
        bindparam("group", type_=inbox.c.consumer_group.type),
        *(rows.c[n] for n in _INBOX_BATCH_COLUMNS),
        func.decode(rows.c.content_hash, "hex"),
    )
    return (
        pg_insert(inbox)
        .from_select(["consumer_group", *_INBOX_BATCH_COLUMNS, "content_hash"], source)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )


INSERT_INBOX_BATCH = _insert_inbox_batch()
"""Insert the inbox rows of the JSON array of objects ``:rows`` in ``:group``, skipping existing ones;
``RETURNING event_id`` names the new ones."""


def keys_json(keys: Sequence[str]) -> str:
    """``keys`` as the ``:keys`` parameter of :data:`LOCK_KEYS` and :data:`BLOCKED_KEYS` (order kept)."""
    return json.dumps(list(keys), ensure_ascii=False)


def inbox_rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """Inbox rows (dicts as :func:`kafkaguard.consumer.apply.inbox_row` makes) as the ``:rows``
    parameter of :data:`INSERT_INBOX_BATCH`."""
    return json.dumps([_jsonable(r) for r in rows], ensure_ascii=False, default=str)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    digest = row.get("content_hash")
    return {**row, "content_hash": digest.hex()} if isinstance(digest, bytes) else row


def insert_dead_letter(row: dict[str, Any]) -> Insert:
    """Insert one listener dead letter unless its position is stored already (a redelivery)."""
    return (
        pg_insert(listener_dead_letters)
        .values(**row)
        .on_conflict_do_nothing(constraint="uq_listener_dl_position")
        .returning(listener_dead_letters.c.id)
    )


def insert_last_resort(row: dict[str, Any]) -> Insert:
    """Insert one ``kafkaguard_last_resort`` row (bytes, numbers and ASCII: nothing to refuse)."""
    return pg_insert(last_resort).values(**row).returning(last_resort.c.id)


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
