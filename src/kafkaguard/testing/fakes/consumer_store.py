"""An in-memory :class:`~kafkaguard.stores.inbox.ConsumerStore`: inbox, listener dead letters and
last-resort rows in dicts, for unit tests of handlers, the consumer and the listener restore job.

It keeps the PostgreSQL adapter's guarantees (the contract suite runs the same tests on both):

- a transaction's changes are undone when its block raises (an undo log, so a concurrent
  transaction's commits survive), and a savepoint undoes only what happened inside it;
- ``lock_key`` is a real lock (a :class:`threading.Lock` per group and key) held until the
  transaction ends, so a restore and a consumer thread serialise as they do on PostgreSQL;
- an inbox row or a dead letter whose identity exists is skipped, as ``ON CONFLICT DO NOTHING``.

``session_factory`` (optional) makes the session a handler gets as ``ctx.session`` — e.g. a
SQLAlchemy ``Session`` on SQLite for the handler's own tables; it is committed or rolled back with
the fake's transaction (and savepoints nest with ``begin_nested``). Without one ``ctx.session`` is
``None``. Set :attr:`MemoryConsumerStore.down` to simulate an outage: every operation raises
:class:`MemoryStoreDown` and :meth:`~MemoryConsumerStore.store_alive` answers False, so the consumer
pauses (:class:`~kafkaguard.errors.StoreUnavailableError`) and nothing is dead-lettered. Set
:attr:`MemoryConsumerStore.refuse_dead_letter` to a predicate on the dead-letter row to have the
store refuse such rows for their data (:class:`MemoryRowRefused`), as PostgreSQL refuses a value a
column cannot hold: the consumer then writes the record to :attr:`~MemoryConsumerStore.last_resort_rows`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus
from kafkaguard.stores.inbox import (
    NEW_EVENT,
    AsyncConsumerTx,
    ConsumerStore,
    ConsumerTx,
    EventStart,
    Prior,
    SyncTxAsAsync,
)
from kafkaguard.stores.listener_dead_letters import ListenerDeadLetter, ListenerDeadLetters
from kafkaguard.stores.restore_decision import RestoreDecision

_T = TypeVar("_T")


class MemoryStoreDown(ConnectionError):
    """The fake store is switched down (:attr:`MemoryConsumerStore.down`)."""


class MemoryRowRefused(ValueError):
    """The fake store refused a dead-letter row for its data (:attr:`MemoryConsumerStore.refuse_dead_letter`),
    as PostgreSQL refuses a value a column cannot hold: not an outage, so the consumer stores the
    record in the last-resort rows and moves on."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def as_record(row: dict[str, Any]) -> ListenerDeadLetter:
    """A stored dead-letter dict as the :class:`ListenerDeadLetter` the restore job reads."""
    return ListenerDeadLetter(
        id=row["id"],
        consumer_group=row["consumer_group"],
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        key=row["key"],
        raw_key=row["raw_key"],
        raw_value=row["raw_value"],
        raw_headers=row["raw_headers"],
        headers=dict(row["headers"] or {}),
        type=row["type"],
        status=row["status"],
        attempts=row["attempts"],
    )


class MemoryConsumerStore:
    """In-memory consumer store (see the module docstring). Thread-safe.

    For assertions: :attr:`inbox` (``(group, event_id)`` → row), :attr:`records` (dead letters by
    id, as the table's columns), :attr:`last_resort_rows`, and :meth:`dead_letters_of`.
    ``clock`` gives "now" (due times, timestamps); pass one to move time in tests.
    """

    rolls_back_handler_writes = True

    def __init__(
        self, session_factory: Callable[[], Any] | None = None, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.inbox: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
        self.records: dict[int, dict[str, Any]] = {}
        self.last_resort_rows: list[dict[str, Any]] = []
        self.down = False
        self.refuse_dead_letter: Callable[[dict[str, Any]], bool] | None = None
        self.dead_letters: ListenerDeadLetters = self  # the ListenerDeadLetters reads are this object's too
        self._mutex = threading.RLock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._next_id = 1

    # -- ConsumerStore ----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[ConsumerTx]:
        self.check()
        tx = MemoryConsumerTx(self)
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        else:
            tx.commit()

    @property
    def async_sessions(self) -> bool:
        """Whether ``session_factory`` is an ``async_sessionmaker``: ``async def`` handlers then get an
        ``AsyncSession`` (committed with the fake's transaction) and sync transactions no session."""
        return isinstance(self.session_factory, async_sessionmaker)

    @asynccontextmanager
    async def async_transaction(self) -> AsyncIterator[AsyncConsumerTx]:
        if not self.async_sessions:
            with self.transaction() as tx:
                yield SyncTxAsAsync(tx)
            return
        self.check()
        assert self.session_factory is not None
        tx = MemoryConsumerTx(self)
        session: AsyncSession = self.session_factory()
        try:
            yield MemoryAsyncTx(tx, session)
            await session.commit()  # the handler's writes first: if they fail, the fake's part is undone
        except BaseException:
            tx.session = None  # the session is the async one's: ended below, not by the fake's part
            tx.rollback()
            await session.rollback()
            raise
        else:
            tx.session = None
            tx.commit()
        finally:
            await session.close()

    def run_async(self, work: Callable[[ConsumerStore], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            return await work(self)

        return asyncio.run(run())

    def store_alive(self) -> bool:
        return not self.down

    def is_connection_error(self, exc: BaseException) -> bool:
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, MemoryStoreDown):
                return True
            seen = seen.__cause__
        return False

    def check(self) -> None:
        """Raise :class:`MemoryStoreDown` while the store is switched down."""
        if self.down:
            raise MemoryStoreDown("the in-memory consumer store is down")

    # -- ListenerDeadLetters ------------------------------------------------------------------------
    def due_keys(self, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
        self.check()
        with self._mutex:
            heads: dict[tuple[str, str], dict[str, Any]] = {}
            for row in sorted(self.records.values(), key=lambda r: r["id"]):
                open_keyed = row["status"] in OPEN_STATUSES and row["key"] is not None
                if open_keyed and (group is None or row["consumer_group"] == group):
                    heads.setdefault((row["consumer_group"], row["key"]), row)
            now = self.clock()
            due = [
                (gk, h["id"])
                for gk, h in heads.items()
                if h["status"] == DeadLetterStatus.PENDING.value and h["next_attempt_at"] <= now
            ]
        return [gk for gk, _ in sorted(due, key=lambda d: d[1])][:limit]

    def groups_with_open_records(self, *, limit: int = 20) -> list[str]:
        self.check()
        with self._mutex:
            groups = {r["consumer_group"] for r in self.records.values() if r["status"] in OPEN_STATUSES}
        return sorted(groups)[:limit]

    def open_types_by_key(self, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
        self.check()
        wanted = set(keys)
        types: dict[str, set[str | None]] = {}
        with self._mutex:
            for r in self.records.values():
                if r["consumer_group"] == group and r["key"] in wanted and r["status"] in OPEN_STATUSES:
                    types.setdefault(r["key"], set()).add(r["type"])
        return types

    def get(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        self.check()
        with self._mutex:
            row = self.records.get(dead_letter_id)
            return as_record(row) if row is not None else None

    # -- for assertions -------------------------------------------------------------------------------
    def dead_letters_of(
        self, group: str | None = None, *, status: str | None = None, key: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored dead letters (copies) in id order, optionally of one group, status or key."""
        with self._mutex:
            rows = sorted(self.records.values(), key=lambda r: r["id"])
            return [
                copy.deepcopy(r)
                for r in rows
                if (group is None or r["consumer_group"] == group)
                and (status is None or r["status"] == status)
                and (key is None or r["key"] == key)
            ]

    def key_lock(self, group: str, key: str) -> threading.Lock:
        """The lock of ``key`` in ``group`` (what :meth:`MemoryConsumerTx.lock_key` holds)."""
        with self._mutex:
            return self._key_locks.setdefault((group, key), threading.Lock())

    def new_id(self) -> int:
        """The next dead-letter id (ids grow in insert order, as PostgreSQL's identity column)."""
        with self._mutex:
            self._next_id += 1
            return self._next_id - 1


class MemoryConsumerTx:
    """One transaction of :class:`MemoryConsumerStore` (:class:`~kafkaguard.stores.inbox.ConsumerTx`)."""

    def __init__(self, store: MemoryConsumerStore) -> None:
        self.store = store
        # An async session factory serves async transactions only (MemoryAsyncTx): none here.
        factory = None if store.async_sessions else store.session_factory
        self.session: Any = factory() if factory is not None else None
        self._undo: list[Callable[[], object]] = []
        self._held: dict[tuple[str, str], threading.Lock] = {}

    # -- ends ---------------------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            if self.session is not None:
                self.session.commit()
        except BaseException:
            self.rollback()
            raise
        self._end()

    def rollback(self) -> None:
        with self.store._mutex:
            for undo in reversed(self._undo):
                undo()
        if self.session is not None:
            self.session.rollback()
        self._end()

    def _end(self) -> None:
        self._undo.clear()
        if self.session is not None and hasattr(self.session, "close"):
            self.session.close()
        for lock in self._held.values():
            lock.release()
        self._held.clear()

    # -- ConsumerTx --------------------------------------------------------------------------------------
    def lock_key(self, group: str, key: str) -> None:
        self.store.check()
        if (group, key) not in self._held:
            lock = self.store.key_lock(group, key)
            lock.acquire()
            self._held[(group, key)] = lock

    def lock_keys(self, group: str, keys: Sequence[str]) -> None:
        for key in keys:
            self.lock_key(group, key)

    def prior(self, group: str, event_id: uuid.UUID) -> Prior | None:
        self.store.check()
        row = self.store.inbox.get((group, event_id))
        if row is None:
            return None
        return Prior(row.get("content_hash"), row.get("topic"), row.get("partition"), row.get("offset"))

    def hashes(self, group: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
        self.store.check()
        inbox = self.store.inbox
        return {i: inbox[(group, i)].get("content_hash") for i in event_ids if (group, i) in inbox}

    def is_blocked(self, group: str, key: str) -> bool:
        return self.any_blocked(group, [key])

    def any_blocked(self, group: str, keys: Sequence[str]) -> bool:
        self.store.check()
        wanted = set(keys)
        with self.store._mutex:
            return any(
                r["consumer_group"] == group and r["key"] in wanted and r["status"] in OPEN_STATUSES
                for r in self.store.records.values()
            )

    def begin_event(self, group: str, key: str, row: dict[str, Any] | None, *, check_blocked: bool) -> EventStart:
        self.lock_key(group, key)
        if row is not None:
            prior = self.prior(group, row["event_id"])
            if prior is not None:
                return EventStart(prior=prior)
        if check_blocked and self.is_blocked(group, key):
            return EventStart(blocked=True)
        if row is not None and not self.insert_inbox_batch(group, [{**row, "key": key}]):
            return EventStart(prior=self.prior(group, row["event_id"]))  # written meanwhile under another key
        return NEW_EVENT

    def insert_inbox(self, row: dict[str, Any]) -> None:
        self.insert_inbox_batch(row["consumer_group"], [row])

    def insert_inbox_batch(self, group: str, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        self.store.check()
        new: set[uuid.UUID] = set()
        with self.store._mutex:
            for row in rows:
                ident = (group, row["event_id"])
                if ident in self.store.inbox:
                    continue
                self.store.inbox[ident] = {**row, "consumer_group": group, "processed_at": self.store.clock()}
                self._undo.append(functools.partial(self.store.inbox.pop, ident, None))
                new.add(row["event_id"])
        return new

    def insert_dead_letter(self, row: dict[str, Any]) -> int | None:
        self.store.check()
        refuse = self.store.refuse_dead_letter
        if refuse is not None and refuse(row):
            raise MemoryRowRefused(f"dead letter refused for its data (group {row['consumer_group']!r})")
        position = (row["consumer_group"], row["topic"], row["partition"], row["offset"])
        with self.store._mutex:
            for r in self.store.records.values():
                if (r["consumer_group"], r["topic"], r["partition"], r["offset"]) == position:
                    return None
            now = self.store.clock()
            new_id = self.store.new_id()
            self.store.records[new_id] = {
                "next_attempt_at": now,
                "restored_at": None,
                "restored_by": None,
                **copy.deepcopy(row),
                "id": new_id,
                "created_at": now,
                "updated_at": now,
            }
            self._undo.append(functools.partial(self.store.records.pop, new_id, None))
        return new_id

    def insert_last_resort(self, row: dict[str, Any]) -> None:
        self.store.check()
        with self.store._mutex:
            stored = {**row, "id": len(self.store.last_resort_rows) + 1}
            self.store.last_resort_rows.append(stored)
            self._undo.append(lambda: self.store.last_resort_rows.remove(stored))

    def open_records(self, group: str, key: str) -> list[ListenerDeadLetter]:
        self.store.check()
        with self.store._mutex:
            rows = sorted(self.store.records.values(), key=lambda r: r["id"])
            return [
                as_record(r)
                for r in rows
                if r["consumer_group"] == group and r["key"] == key and r["status"] in OPEN_STATUSES
            ]

    def open_record(self, dead_letter_id: int) -> list[ListenerDeadLetter]:
        self.store.check()
        with self.store._mutex:
            row = self.store.records.get(dead_letter_id)
            return [as_record(row)] if row is not None and row["status"] in OPEN_STATUSES else []

    def record(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        return self.store.get(dead_letter_id)

    def mark(self, dead_letter_id: int, change: RestoreDecision) -> None:
        self.store.check()
        with self.store._mutex:
            row = self.store.records[dead_letter_id]
            before = copy.deepcopy(row)
            row.update(
                change.listener_columns(self.store.clock()), history=[*row.get("history", []), change.history_entry]
            )
            self._undo.append(lambda: self.store.records.__setitem__(dead_letter_id, before))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        nested = self.session.begin_nested() if hasattr(self.session, "begin_nested") else nullcontext()
        with nested, self.undone_on_error():
            yield

    @contextmanager
    def undone_on_error(self) -> Iterator[None]:
        """Undo what the block did to the fake when it raises (the fake's part of a savepoint)."""
        mark = len(self._undo)
        try:
            yield
        except BaseException:
            with self.store._mutex:
                while len(self._undo) > mark:
                    self._undo.pop()()
            raise


class MemoryAsyncTx:
    """An async transaction of :class:`MemoryConsumerStore` with an ``AsyncSession`` for the handler:
    the fake's steps run on ``tx`` (with the session's sync form, inside ``run_sync``), savepoints
    nest on both."""

    def __init__(self, tx: MemoryConsumerTx, session: AsyncSession) -> None:
        self.tx = tx
        self.session = session

    async def run_sync(self, fn: Callable[[ConsumerTx], _T]) -> _T:
        def on_sync(sync_session: Any) -> _T:
            self.tx.session = sync_session  # a sync handler in this transaction writes with it
            return fn(self.tx)

        return await self.session.run_sync(on_sync)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self.session.begin_nested():
            with self.tx.undone_on_error():
                yield
