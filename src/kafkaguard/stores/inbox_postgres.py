"""The PostgreSQL adapter of the consumer store port (:mod:`kafkaguard.stores.inbox`): the inbox
statements and :class:`PostgresConsumerStore`.

Batch mode sends a chunk's keys and inbox rows as one JSON text parameter each
(:data:`LOCK_KEYS`, :data:`INSERT_INBOX_BATCH`): one SQL text whatever the chunk size, compiled
once and prepared by psycopg — it is benchmarked; do not add per-event work here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import JSON, Engine, Insert, Select, Text, TextClause, bindparam, cast, column, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import OPEN_STATUSES
from kafkaguard.db.engine import require_postgresql
from kafkaguard.db.event_loop import run_async
from kafkaguard.db.locks import KEY_LOCK_SQLA
from kafkaguard.db.tables import inbox
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.stores import last_resort as LR
from kafkaguard.stores import listener_dead_letters as LDL
from kafkaguard.stores.inbox import NEW_EVENT, AsyncConsumerTx, ConsumerStore, ConsumerTx, EventStart, Prior
from kafkaguard.stores.listener_dead_letters import ListenerDeadLetter, ListenerDeadLetters
from kafkaguard.stores.restore_decision import RestoreDecision

_T = TypeVar("_T")


# -- statements ---------------------------------------------------------------------------------
def lock_key(group: str, key: str) -> TextClause:
    """Transaction-scoped advisory lock on ``key`` in ``group`` (the restore job takes the same)."""
    return text(KEY_LOCK_SQLA).bindparams(scope=group, key=key)


def applied_before(group: str, event_id: uuid.UUID) -> Select[tuple[Any, Any, Any, Any]]:
    """The inbox row of ``(group, event_id)`` if there is one: content hash and where it was read."""
    return select(inbox.c.content_hash, inbox.c.topic, inbox.c.partition, inbox.c.offset).where(
        inbox.c.consumer_group == group, inbox.c.event_id == event_id
    )


def hashes_of(group: str, event_ids: Sequence[uuid.UUID]) -> Select[tuple[Any, Any]]:
    """``(event_id, content_hash)`` of the inbox rows of ``event_ids`` in ``group``."""
    return select(inbox.c.event_id, inbox.c.content_hash).where(
        inbox.c.consumer_group == group, inbox.c.event_id.in_(list(event_ids))
    )


def insert_inbox(rows: Sequence[dict[str, Any]]) -> Insert:
    """Insert inbox rows, skipping existing ones; ``RETURNING event_id`` names the new ones."""
    return pg_insert(inbox).values(list(rows)).on_conflict_do_nothing().returning(inbox.c.event_id)


_INBOX_BATCH_COLUMNS = ("event_id", "type", "key", "topic", "partition", "offset")
# content_hash travels as hex text in the JSON and is decoded to bytea in the statement.


def _lock_keys() -> Select[tuple[int]]:
    k = LDL.json_elements("keys")
    return select(func.count(func.pg_advisory_xact_lock(func.hashtext(bindparam("scope")), func.hashtext(k.c.k))))


LOCK_KEYS = _lock_keys()
"""The locks of :func:`lock_key` on every key of the JSON array ``:keys`` in scope ``:scope``, in one
statement, taken in the array's order (a function scan yields its elements in order)."""


def _insert_inbox_batch() -> Insert:
    cols = [column(name, inbox.c[name].type) for name in _INBOX_BATCH_COLUMNS]
    cols.append(column("content_hash", Text()))
    rows = func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON)).table_valued(*cols)
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


_BEGIN_EVENT_ARGS = (
    ("group", "text"), ("key", "text"), ("check_blocked", "boolean"), ("open", "text[]"), ("event_id", "uuid"),
    ("type", "text"), ("topic", "text"), ("partition", "integer"), ("offset", "bigint"), ("content_hash", "bytea"),
)  # fmt: skip
BEGIN_EVENT_SQL = "SELECT * FROM kafkaguard_begin_event({})".format(  # noqa: S608 - fixed text, no input
    ", ".join(f"%s::{sql_type}" for _, sql_type in _BEGIN_EVENT_ARGS)
)
"""psycopg form of the call of ``kafkaguard_begin_event`` (migration ``0003_begin_event``): one
round trip for lock, dedupe, blocked check and inbox row; a fixed text, so psycopg prepares it
after a few executions (``prepare_threshold``). Positional parameters in ``_BEGIN_EVENT_ARGS`` order."""

BEGIN_EVENT = text(
    "SELECT * FROM kafkaguard_begin_event({})".format(  # noqa: S608 - fixed text, no input
        ", ".join(f"CAST(:p{i} AS {sql_type})" for i, (_, sql_type) in enumerate(_BEGIN_EVENT_ARGS))
    )
)
"""The same call for drivers other than psycopg 3 (asyncpg under ``run_sync``)."""

_OPEN = list(OPEN_STATUSES)
_NO_ROW = (None, None, None, None, None, None)


def begin_event_params(group: str, key: str, row: dict[str, Any] | None, check_blocked: bool) -> tuple[Any, ...]:
    """The positional parameters of :data:`BEGIN_EVENT_SQL` (``row``: the inbox row, or ``None``)."""
    if row is None:
        return (group, key, check_blocked, _OPEN, *_NO_ROW)
    return (
        group, key, check_blocked, _OPEN, row["event_id"], row["type"], row["topic"], row["partition"],
        row["offset"], row["content_hash"],
    )  # fmt: skip


def event_start(found: Any) -> EventStart:
    """The :class:`EventStart` of ``kafkaguard_begin_event``'s result row."""
    state = found[0]
    if state == 0:
        return NEW_EVENT
    if state == 2:
        return EventStart(blocked=True)
    digest = bytes(found[1]) if found[1] is not None else None
    return EventStart(prior=Prior(digest, found[2], found[3], found[4]))


def _missing_function(exc: BaseException) -> bool:
    """Whether ``exc`` says ``kafkaguard_begin_event`` does not exist (migration 0003 not applied)."""
    if isinstance(exc, sa_exc.DBAPIError):
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.errors.UndefinedFunction):
        return True
    return type(exc).__name__ == "UndefinedFunctionError" and "kafkaguard_begin_event" in str(exc)


def keys_json(keys: Sequence[str]) -> str:
    """``keys`` as the ``:keys`` parameter of :data:`LOCK_KEYS` and ``BLOCKED_KEYS`` (order kept)."""
    return json.dumps(list(keys), ensure_ascii=False)


def inbox_rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """Inbox rows as the ``:rows`` parameter of :data:`INSERT_INBOX_BATCH`."""
    return json.dumps([_jsonable(r) for r in rows], ensure_ascii=False, default=str)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    digest = row.get("content_hash")
    return {**row, "content_hash": digest.hex()} if isinstance(digest, bytes) else row


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


# -- the PostgreSQL adapter ---------------------------------------------------------------------
class PostgresTx:
    """:class:`ConsumerTx` on a SQLAlchemy :class:`Session` (the handler's ``ctx.session``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._keys: tuple[Sequence[str], str] | None = None  # batch mode: the chunk's keys, dumped once
        self._raw: psycopg.Connection[Any] | bool | None = False  # False: not looked up yet; None: not psycopg

    def lock_key(self, group: str, key: str) -> None:
        self.session.execute(lock_key(group, key))

    def lock_keys(self, group: str, keys: Sequence[str]) -> None:
        self.session.execute(LOCK_KEYS, {"scope": group, "keys": self._keys_json(keys)})  # one round trip

    def _keys_json(self, keys: Sequence[str]) -> str:
        if self._keys is None or self._keys[0] is not keys:
            self._keys = (keys, keys_json(keys))
        return self._keys[1]

    def prior(self, group: str, event_id: uuid.UUID) -> Prior | None:
        row = self.session.execute(applied_before(group, event_id)).first()
        if row is None:
            return None
        digest = bytes(row.content_hash) if row.content_hash is not None else None
        return Prior(digest, row.topic, row.partition, row.offset)

    def hashes(self, group: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
        return {i: (bytes(h) if h is not None else None) for i, h in self.session.execute(hashes_of(group, event_ids))}

    def is_blocked(self, group: str, key: str) -> bool:
        return bool(self.session.execute(LDL.is_blocked(group, key)).scalar())

    def any_blocked(self, group: str, keys: Sequence[str]) -> bool:
        params = {"group": group, "keys": self._keys_json(keys)}
        return self.session.execute(LDL.BLOCKED_KEYS, params).first() is not None

    def begin_event(self, group: str, key: str, row: dict[str, Any] | None, *, check_blocked: bool) -> EventStart:
        params = begin_event_params(group, key, row, check_blocked)
        raw = self._psycopg()
        try:
            if raw is not None:
                # The session's own connection, so this is in its transaction; straight to psycopg:
                # no SQLAlchemy execution context per event on the hot path.
                with raw.cursor() as cur:
                    found = cur.execute(BEGIN_EVENT_SQL, params).fetchone()
            else:
                found = self.session.execute(BEGIN_EVENT, {f"p{i}": v for i, v in enumerate(params)}).one()
        except psycopg.Error as exc:
            if raw is not None and raw.broken:
                # Lost under SQLAlchemy's feet: discard the connection and say so the way a
                # statement through SQLAlchemy would (``connection_invalidated``).
                self.session.connection().invalidate(exc)
                raise sa_exc.DBAPIError.instance(
                    BEGIN_EVENT_SQL, params, exc, psycopg.Error, connection_invalidated=True
                ) from exc
            if _missing_function(exc):
                raise StoreUnavailableError(
                    "kafkaguard_begin_event is missing: the schema predates migration 0003; run `kafkaguard db upgrade`"
                ) from exc
            raise
        except Exception as exc:
            if _missing_function(exc):
                raise StoreUnavailableError(
                    "kafkaguard_begin_event is missing: the schema predates migration 0003; run `kafkaguard db upgrade`"
                ) from exc
            raise
        assert found is not None  # the function returns one row
        return event_start(found)

    def _psycopg(self) -> psycopg.Connection[Any] | None:
        """The psycopg 3 connection under the session (``None`` for another driver)."""
        if self._raw is False:
            dbapi = self.session.connection().connection.dbapi_connection
            self._raw = dbapi if isinstance(dbapi, psycopg.Connection) else None
        return self._raw if isinstance(self._raw, psycopg.Connection) else None

    def insert_inbox(self, row: dict[str, Any]) -> None:
        self.session.execute(insert_inbox([row]))

    def insert_inbox_batch(self, group: str, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        params = {"group": group, "rows": inbox_rows_json(rows)}
        return set(self.session.execute(INSERT_INBOX_BATCH, params).scalars())

    def insert_dead_letter(self, row: dict[str, Any]) -> int | None:
        new_id = self.session.execute(LDL.insert_dead_letter(row)).scalar()
        return int(new_id) if new_id is not None else None

    def insert_last_resort(self, row: dict[str, Any]) -> None:
        self.session.execute(LR.insert_last_resort(row))

    def open_records(self, group: str, key: str) -> list[ListenerDeadLetter]:
        return [LDL.to_record(r) for r in self.session.execute(LDL.open_of_key(group, key))]

    def open_record(self, dead_letter_id: int) -> list[ListenerDeadLetter]:
        return [LDL.to_record(r) for r in self.session.execute(LDL.open_by_id(dead_letter_id))]

    def record(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        row = self.session.execute(LDL.by_id(dead_letter_id)).first()
        return LDL.to_record(row) if row is not None else None

    def mark(self, dead_letter_id: int, change: RestoreDecision) -> None:
        self.session.execute(LDL.mark(dead_letter_id, change))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.session.begin_nested():
            yield


class PostgresAsyncTx:
    """:class:`AsyncConsumerTx` on an :class:`AsyncSession`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def run_sync(self, fn: Callable[[ConsumerTx], _T]) -> _T:
        return await self.session.run_sync(lambda sync: fn(PostgresTx(sync)))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.session.begin_nested():
            yield


class EngineHealth:
    """The two health answers a :class:`ConsumerStore` gives, the same for every SQLAlchemy engine."""

    engine: Engine

    def store_alive(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def is_connection_error(self, exc: BaseException) -> bool:
        return is_connection_error(exc)


class PostgresConsumerStore(EngineHealth):
    """:class:`ConsumerStore` on PostgreSQL: ``engine`` (its schema); ``async_engine`` on the same
    database and schema for ``async def`` handlers (needed only then)."""

    rolls_back_handler_writes = True

    def __init__(self, engine: Engine, async_engine: AsyncEngine | None = None) -> None:
        require_postgresql(engine, "the consumer's inbox store")
        self.engine = engine
        self.async_engine = async_engine
        self.dead_letters: ListenerDeadLetters = LDL.PostgresListenerDeadLetters(engine)

    @contextmanager
    def transaction(self) -> Iterator[ConsumerTx]:
        with Session(self.engine) as session, session.begin():
            yield PostgresTx(session)

    @asynccontextmanager
    async def async_transaction(self) -> AsyncIterator[AsyncConsumerTx]:
        if self.async_engine is None:
            raise StoreUnavailableError("an async handler needs an async engine (Worker(async_engine=...))")
        async with AsyncSession(self.async_engine) as session, session.begin():
            yield PostgresAsyncTx(session)

    def run_async(self, work: Callable[[ConsumerStore], Awaitable[_T]]) -> _T:
        return run_async(self.engine, self.async_engine, lambda ae: work(PostgresConsumerStore(self.engine, ae)))
