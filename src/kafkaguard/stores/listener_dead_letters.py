"""``kafka_listener_dead_letters``: the statements of the consumer and of both restore jobs, the
port the listener restore job reads through, and its PostgreSQL adapter.

The writes that must share the consumer's transaction (blocked check, dead-letter insert, marking
a restored or failed record) are statement builders executed by
:class:`kafkaguard.stores.inbox_postgres.PostgresConsumerStore`'s transaction; the reads the restore
job makes outside a key's transaction (due keys, groups, open types, one record) are
:class:`ListenerDeadLetters`. Every row of the table is inserted by :func:`insert_dead_letter`
(the consumer's dead letters and parked records, and the publisher restore job's handoff).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    ColumnElement,
    Engine,
    Insert,
    Select,
    Text,
    Update,
    bindparam,
    cast,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus
from kafkaguard.db.engine import require_postgresql
from kafkaguard.db.safe_text import pg_json
from kafkaguard.db.tables import listener_dead_letters as DL
from kafkaguard.db.types import utc_now
from kafkaguard.stores.restore_decision import RestoreDecision


@dataclass(frozen=True)
class ListenerDeadLetter:
    """One stored listener dead letter, as the restore job needs it (the message and its state)."""

    id: int
    consumer_group: str
    topic: str
    partition: int
    offset: int
    key: str | None
    raw_key: bytes | None
    raw_value: bytes | None
    raw_headers: bytes | None
    headers: dict[str, Any]
    type: str | None
    status: str
    attempts: int


class ListenerDeadLetters(Protocol):
    """Reads of the listener dead-letter store the restore job makes outside a key's transaction."""

    def due_keys(self, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
        """``(group, key)`` whose oldest open record is ``pending`` and due, oldest head first; ``group``
        filters before the ``limit`` (one group's backlog never hides another's due keys)."""
        ...

    def groups_with_open_records(self, *, limit: int = 20) -> list[str]:
        """Consumer groups that have open records (at most ``limit``), sorted."""
        ...

    def open_types_by_key(self, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
        """The event types of each key's open records in ``group``."""
        ...

    def get(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        """The record ``dead_letter_id`` whatever its status, or ``None``."""
        ...


def to_record(row: Any) -> ListenerDeadLetter:
    """A result row of ``SELECT * FROM kafka_listener_dead_letters`` as a :class:`ListenerDeadLetter`."""
    return ListenerDeadLetter(
        id=int(row.id),
        consumer_group=str(row.consumer_group),
        topic=str(row.topic),
        partition=int(row.partition),
        offset=int(row.offset),
        key=row.key,
        raw_key=bytes(row.raw_key) if row.raw_key is not None else None,
        raw_value=bytes(row.raw_value) if row.raw_value is not None else None,
        raw_headers=bytes(row.raw_headers) if row.raw_headers is not None else None,
        headers=dict(row.headers or {}),
        type=row.type,
        status=str(row.status),
        attempts=int(row.attempts),
    )


# -- statements of the consumer's transaction --------------------------------------------------
def is_blocked(group: str, key: str) -> Select[tuple[bool]]:
    """``SELECT EXISTS`` open listener dead letter of ``key`` in ``group`` (OPEN_STATUSES)."""
    return select(exists().where(DL.c.consumer_group == group, DL.c.key == key, DL.c.status.in_(OPEN_STATUSES)))


def json_elements(param: str) -> Any:
    """The elements of the JSON array text parameter ``:param`` as a derived table with column ``k``.

    Batch mode sends a chunk's keys as one JSON text: one parameter whatever the chunk size, so each
    statement has one SQL text (compiled once, prepared by psycopg), and json.dumps plus PostgreSQL's
    JSON parser are C where psycopg dumps an array element by element in Python.
    """
    return func.json_array_elements_text(cast(bindparam(param, type_=Text()), JSON)).table_valued("k").render_derived()


def _blocked_keys() -> Select[tuple[str | None]]:
    k = json_elements("keys")
    return (
        select(DL.c.key)
        .where(DL.c.consumer_group == bindparam("group"), DL.c.key.in_(select(k.c.k)), DL.c.status.in_(OPEN_STATUSES))
        .distinct()
    )


BLOCKED_KEYS = _blocked_keys()
"""Keys among the JSON array ``:keys`` with an open listener dead letter in ``:group`` (batch mode:
one SQL text whatever the chunk size)."""


def insert_dead_letter(row: dict[str, Any]) -> Insert:
    """Insert one listener dead letter unless its position is stored already (a redelivery, or a
    handoff done before); ``RETURNING id`` (none for a row that existed)."""
    return pg_insert(DL).values(**row).on_conflict_do_nothing(constraint="uq_listener_dl_position").returning(DL.c.id)


def open_of_key(group: str, key: str) -> Select[Any]:
    """The open records of ``key`` in ``group`` in id (arrival) order, locked for the restore."""
    return (
        select(DL)
        .where(DL.c.consumer_group == group, DL.c.key == key, DL.c.status.in_(OPEN_STATUSES))
        .order_by(DL.c.id)
        .with_for_update()
        # MariaDB: a locking read locks every row it scans, and on a small table InnoDB prefers a
        # full scan, so one key's restore would block every other key's; the key index keeps it to one.
        .with_hint(DL, "FORCE INDEX (ix_listener_dl_key)", "mysql")
        .with_hint(DL, "FORCE INDEX (ix_listener_dl_key)", "mariadb")
    )


def by_id(dead_letter_id: int) -> Select[Any]:
    """Record ``dead_letter_id`` whatever its status."""
    return select(DL).where(DL.c.id == dead_letter_id)


def open_by_id(dead_letter_id: int) -> Select[Any]:
    """Record ``dead_letter_id`` if it is open, locked for the restore."""
    return select(DL).where(DL.c.id == dead_letter_id, DL.c.status.in_(OPEN_STATUSES)).with_for_update()


def _append_history(entry: dict[str, Any]) -> Any:
    return DL.c.history.op("||")(cast(literal([pg_json(entry)], JSONB), JSONB))


def mark(dead_letter_id: int, change: RestoreDecision) -> Update:
    """Store ``change`` on record ``dead_letter_id``: status, attempts, next try, error, history."""
    values = {**change.listener_columns(utc_now()), "history": _append_history(change.history_entry)}
    return update(DL).where(DL.c.id == dead_letter_id).values(**values)


# -- reads outside a key's transaction ----------------------------------------------------------
def due_keys_query(*, limit: int, group: str | None) -> Select[Any]:
    """See :meth:`ListenerDeadLetters.due_keys`."""
    where: list[ColumnElement[bool]] = [DL.c.status.in_(OPEN_STATUSES), DL.c.key.is_not(None)]
    if group is not None:
        where.append(DL.c.consumer_group == group)
    head = (
        select(DL.c.consumer_group, DL.c.key, func.min(DL.c.id).label("head_id"))
        .where(*where)
        .group_by(DL.c.consumer_group, DL.c.key)
        .subquery()
    )
    return (
        select(head.c.consumer_group, head.c.key)
        .join(DL, DL.c.id == head.c.head_id)
        .where(DL.c.status == DeadLetterStatus.PENDING.value, DL.c.next_attempt_at <= utc_now())
        .order_by(head.c.head_id)
        .limit(limit)
    )


class SqlListenerDeadLetters:
    """:class:`ListenerDeadLetters` on a SQLAlchemy engine: PostgreSQL (``engine``'s schema) or MariaDB
    (its database): these reads are plain SQLAlchemy Core, the same on both."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def due_keys(self, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            return [(str(g), str(k)) for g, k in conn.execute(due_keys_query(limit=limit, group=group))]

    def groups_with_open_records(self, *, limit: int = 20) -> list[str]:
        q = (
            select(DL.c.consumer_group)
            .where(DL.c.status.in_(OPEN_STATUSES))
            .group_by(DL.c.consumer_group)
            .order_by(DL.c.consumer_group)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [str(g) for g in conn.execute(q).scalars()]

    def open_types_by_key(self, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
        if not keys:
            return {}
        q = (
            select(DL.c.key, DL.c.type)
            .where(DL.c.consumer_group == group, DL.c.key.in_(list(keys)), DL.c.status.in_(OPEN_STATUSES))
            .group_by(DL.c.key, DL.c.type)
        )
        types: dict[str, set[str | None]] = {}
        with self.engine.connect() as conn:
            for key, event_type in conn.execute(q):
                types.setdefault(str(key), set()).add(event_type)
        return types

    def get(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        with self.engine.connect() as conn:
            row = conn.execute(by_id(dead_letter_id)).first()
        return to_record(row) if row is not None else None


class PostgresListenerDeadLetters(SqlListenerDeadLetters):
    """:class:`SqlListenerDeadLetters` that refuses an engine on another database than PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        require_postgresql(engine, "the listener dead-letter store")
        super().__init__(engine)
