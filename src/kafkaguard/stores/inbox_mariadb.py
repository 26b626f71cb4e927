"""The MariaDB adapter of the consumer store port (:mod:`kafkaguard.stores.inbox`).

The same guarantees as :class:`~kafkaguard.stores.inbox_postgres.PostgresConsumerStore`, by MariaDB's
means:

- **Per-key locks for the transaction.** MariaDB has no transaction-scoped advisory lock. A key is
  locked with a named lock, ``GET_LOCK('kafkaguard.key:<hash of group and key>', ...)``, taken inside
  the transaction and released right after it commits or rolls back (:meth:`MariaDbConsumerStore.transaction`
  holds one connection for both), so it is held exactly as long as PostgreSQL's
  ``pg_advisory_xact_lock``; if the process dies, the server frees it with the connection. A chunk's
  keys are locked in one statement, in sorted order (two chunks never wait on each other in a cycle).
  The listener restore job takes the same locks through the same transaction.
- **Dedupe by the inbox's primary key** ``(consumer_group, event_id)``, looked up under the key's lock;
  a new event's inbox row is written in the transaction of its effects.
- **Parking**: a key with an open listener dead letter holds its later events back, as on PostgreSQL.
- **Dead letters** in the same transaction; a repeated position is stored once
  (``ON DUPLICATE KEY`` on the position, never ``INSERT IGNORE``, which would turn a data refusal into
  a warning and lose the record).

Everything else (the statements on ``kafka_listener_dead_letters`` and ``kafka_inbox`` that are
plain SQLAlchemy Core) is shared with the PostgreSQL adapter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Engine, func, select, text, update
from sqlalchemy.dialects.mysql import insert as my_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import OPEN_STATUSES
from kafkaguard.db.event_loop import run_async
from kafkaguard.db.safe_text import pg_json
from kafkaguard.db.tables import inbox
from kafkaguard.db.tables import listener_dead_letters as DL
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.stores import listener_dead_letters as LDL
from kafkaguard.stores.inbox import NEW_EVENT, AsyncConsumerTx, ConsumerStore, ConsumerTx, EventStart
from kafkaguard.stores.inbox_postgres import EngineHealth, PostgresTx
from kafkaguard.stores.publisher_dead_letters_mariadb import key_lock_name
from kafkaguard.stores.restore_decision import RestoreDecision

_T = TypeVar("_T")

KEY_LOCK_WAIT = 60
"""Seconds a transaction waits for a key another transaction holds before giving up (then it is
retried like any transaction that failed for the store: nothing was applied)."""


class KeyLockTimeout(StoreUnavailableError):
    """A key's lock was not granted within :data:`KEY_LOCK_WAIT` seconds."""


class _Locks:
    """The named locks one connection took in its current transaction (released after it ends)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def take(self, session: Session, names: Sequence[str]) -> None:
        wanted = sorted(set(names) - self.names)
        if not wanted:
            return
        calls = ", ".join(f"GET_LOCK(:n{i}, {KEY_LOCK_WAIT})" for i in range(len(wanted)))
        row = session.execute(text(f"SELECT {calls}"), {f"n{i}": n for i, n in enumerate(wanted)}).one()
        granted = [n for n, ok in zip(wanted, row, strict=True) if ok == 1]
        self.names.update(granted)
        if len(granted) != len(wanted):
            raise KeyLockTimeout(
                f"a key's lock was not granted within {KEY_LOCK_WAIT} s (another transaction holds it)"
            )

    def release(self, conn: Connection) -> None:
        if self.names:
            self.names.clear()
            conn.exec_driver_sql("SELECT RELEASE_ALL_LOCKS()")


class MariaDbTx(PostgresTx):
    """:class:`ConsumerTx` on a SQLAlchemy :class:`Session` on MariaDB."""

    def __init__(self, session: Session, locks: _Locks | None = None) -> None:
        super().__init__(session)
        self._locks = locks if locks is not None else _Locks()

    def lock_key(self, group: str, key: str) -> None:
        self._locks.take(self.session, [key_lock_name(group, key)])

    def lock_keys(self, group: str, keys: Sequence[str]) -> None:
        self._locks.take(self.session, [key_lock_name(group, k) for k in keys])

    def any_blocked(self, group: str, keys: Sequence[str]) -> bool:
        if not keys:
            return False
        q = (
            select(DL.c.id)
            .where(DL.c.consumer_group == group, DL.c.key.in_(list(set(keys))), DL.c.status.in_(OPEN_STATUSES))
            .limit(1)
        )
        return self.session.execute(q).first() is not None

    def begin_event(self, group: str, key: str, row: dict[str, Any] | None, *, check_blocked: bool) -> EventStart:
        """The steps of PostgreSQL's ``kafkaguard_begin_event`` as separate statements, under the key's lock."""
        self.lock_key(group, key)
        if row is not None:
            found = self.prior(group, row["event_id"])
            if found is not None:
                return EventStart(prior=found)
        if check_blocked and self.is_blocked(group, key):
            return EventStart(blocked=True)
        if row is not None:
            self.insert_inbox({"consumer_group": group, "key": key, **row})
        return NEW_EVENT

    def insert_inbox(self, row: dict[str, Any]) -> None:
        statement = my_insert(inbox).values(**row)
        self.session.execute(statement.on_duplicate_key_update(consumer_group=statement.inserted.consumer_group))

    def insert_inbox_batch(self, group: str, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert the rows whose event id the inbox does not hold yet; return those ids.

        Under the chunk's key locks no other transaction inserts these events, so "not there yet" and
        the insert cannot disagree (an id arriving under two keys at once fails on the primary key and
        the chunk is retried)."""
        if not rows:
            return set()
        have = set(self.hashes(group, [r["event_id"] for r in rows]))
        new = [{"consumer_group": group, **r} for r in rows if r["event_id"] not in have]
        if new:
            self.session.execute(inbox.insert(), new)
        return {r["event_id"] for r in new}

    def insert_dead_letter(self, row: dict[str, Any]) -> int | None:
        statement = my_insert(DL).values(**row)
        result = cast(CursorResult[Any], self.session.execute(statement.on_duplicate_key_update(id=DL.c.id)))
        # rowcount 1: inserted; 0: the position was stored already (the no-op update changed nothing).
        return int(result.lastrowid) if result.rowcount == 1 and result.lastrowid else None

    def mark(self, dead_letter_id: int, change: RestoreDecision) -> None:
        entry = json.dumps([pg_json(change.history_entry)], default=str)
        values = {
            **change.listener_columns(func.utc_timestamp(6)),
            "history": func.json_merge_preserve(DL.c.history, entry),
        }
        self.session.execute(update(DL).where(DL.c.id == dead_letter_id).values(**values))


class MariaDbAsyncTx:
    """:class:`AsyncConsumerTx` on an :class:`AsyncSession` on MariaDB."""

    def __init__(self, session: AsyncSession, locks: _Locks) -> None:
        self.session = session
        self._locks = locks

    async def run_sync(self, fn: Callable[[ConsumerTx], _T]) -> _T:
        return await self.session.run_sync(lambda sync: fn(MariaDbTx(sync, self._locks)))

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.session.begin_nested():
            yield


class MariaDbConsumerStore(EngineHealth):
    """:class:`ConsumerStore` on MariaDB: ``engine`` (its database); ``async_engine`` on the same
    database for ``async def`` handlers (needed only then)."""

    rolls_back_handler_writes = True

    def __init__(self, engine: Engine, async_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.async_engine = async_engine
        self.dead_letters: LDL.ListenerDeadLetters = LDL.SqlListenerDeadLetters(engine)

    @contextmanager
    def transaction(self) -> Iterator[ConsumerTx]:
        """One transaction on one connection; the key locks it took are released after it ends."""
        locks = _Locks()
        with self.engine.connect() as conn:
            try:
                with Session(bind=conn) as session, session.begin():
                    yield MariaDbTx(session, locks)
            finally:
                if locks.names and not conn.invalidated:
                    locks.release(conn)
                    conn.commit()  # RELEASE_ALL_LOCKS ran outside the business transaction: end its autobegin

    @asynccontextmanager
    async def async_transaction(self) -> AsyncIterator[AsyncConsumerTx]:
        if self.async_engine is None:
            raise StoreUnavailableError("an async handler needs an async engine (Worker(async_engine=...))")
        locks = _Locks()
        async with self.async_engine.connect() as conn:
            try:
                async with AsyncSession(bind=conn) as session, session.begin():
                    yield MariaDbAsyncTx(session, locks)
            finally:
                if locks.names and not conn.invalidated:
                    await _release_async(conn, locks)

    def run_async(self, work: Callable[[ConsumerStore], Awaitable[_T]]) -> _T:
        return run_async(self.engine, self.async_engine, lambda ae: work(MariaDbConsumerStore(self.engine, ae)))


async def _release_async(conn: AsyncConnection, locks: _Locks) -> None:
    locks.names.clear()
    await conn.exec_driver_sql("SELECT RELEASE_ALL_LOCKS()")
    await conn.commit()
