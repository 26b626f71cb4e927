"""The consumer's unit of work over ``kafka_inbox`` (and the listener dead letters it decides by):
the port. Its PostgreSQL adapter is :mod:`kafkaguard.stores.inbox_postgres`; its in-memory fake
``kafkaguard.testing.MemoryConsumerStore`` (the contract suite runs the same tests on both).

One :meth:`ConsumerStore.transaction` carries one decision: lock the key, dedupe against the inbox,
check for an open dead letter of the key (park), write the inbox row or the dead letter, run the
handler in :attr:`ConsumerTx.session` — all committed together, or not at all. The restore job uses
the same transaction to apply a key's records and mark them. The key lock is the one the restore
job takes (:mod:`kafkaguard.db.locks`), so parking and restoring never race.

An outage is told from a statement's own failure by :meth:`ConsumerStore.is_connection_error` plus
:meth:`ConsumerStore.store_alive`: the caller pauses and never dead-letters for it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from kafkaguard.stores.listener_dead_letters import ListenerDeadLetter, ListenerDeadLetters
from kafkaguard.stores.restore_decision import RestoreDecision

_T = TypeVar("_T")


@dataclass(frozen=True)
class Prior:
    """The inbox row of an event id: its content digest (``None`` on rows older than digests) and
    where it was read (``topic`` ``None``: received over HTTP)."""

    content_hash: bytes | None
    topic: str | None
    partition: int | None
    offset: int | None


@dataclass(frozen=True)
class EventStart:
    """What :meth:`ConsumerTx.begin_event` found under the key's lock.

    ``prior``: the inbox row the event id already has (nothing was written; the caller tells a
    duplicate from an id conflict); ``blocked``: the key has an open listener dead letter (nothing
    was written); neither: the inbox row (if one was asked for) is written, run the handler.
    """

    prior: Prior | None = None
    blocked: bool = False


NEW_EVENT = EventStart()
"""The :class:`EventStart` of an event to apply now."""


class ConsumerTx(Protocol):
    """One open transaction of the consumer (or of the listener restore job).

    ``session`` is what a handler receives as ``ctx.session``: its writes commit with the inbox row.
    Everything here happens in that transaction; nothing is visible to others before it commits.
    """

    session: Any

    def lock_key(self, group: str, key: str) -> None:
        """Take the key's lock (scope ``group``) until the transaction ends."""
        ...

    def lock_keys(self, group: str, keys: Sequence[str]) -> None:
        """:meth:`lock_key` on every key, in the given order (pass them sorted: no deadlock)."""
        ...

    def prior(self, group: str, event_id: uuid.UUID) -> Prior | None:
        """The inbox row of ``(group, event_id)``, or ``None`` when the event is new."""
        ...

    def hashes(self, group: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
        """Content digests of the inbox rows of ``event_ids`` (ids without a row are left out)."""
        ...

    def is_blocked(self, group: str, key: str) -> bool:
        """Whether ``key`` has an open listener dead letter in ``group``."""
        ...

    def any_blocked(self, group: str, keys: Sequence[str]) -> bool:
        """Whether any of ``keys`` has an open listener dead letter in ``group`` (one statement)."""
        ...

    def begin_event(self, group: str, key: str, row: dict[str, Any] | None, *, check_blocked: bool) -> EventStart:
        """The steps before a handler, in this order and with the effect of the separate methods:
        :meth:`lock_key`; with an inbox ``row`` (of ``group``, ``key`` its key), :meth:`prior` of its
        ``event_id`` (found: returned, nothing written); ``check_blocked``: :meth:`is_blocked` (yes:
        ``blocked``, nothing written); then :meth:`insert_inbox` of ``row`` — a row of the same id
        that appeared meanwhile is returned as ``prior``. Every look-up sees what the lock's previous
        holder committed. PostgreSQL: one round trip.
        """
        ...

    def insert_inbox(self, row: dict[str, Any]) -> None:
        """Insert one inbox row (an existing one is left as it is)."""
        ...

    def insert_inbox_batch(self, group: str, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        """Insert inbox rows of ``group`` in one statement; the ids that were new (the rest existed)."""
        ...

    def insert_dead_letter(self, row: dict[str, Any]) -> int | None:
        """Insert a listener dead letter; its id, or ``None`` when its position is stored already."""
        ...

    def insert_last_resort(self, row: dict[str, Any]) -> None:
        """Insert a ``kafkaguard_last_resort`` row."""
        ...

    def open_records(self, group: str, key: str) -> list[ListenerDeadLetter]:
        """The key's open dead letters in arrival order, held until the transaction ends."""
        ...

    def open_record(self, dead_letter_id: int) -> list[ListenerDeadLetter]:
        """Record ``dead_letter_id`` if it is open (a one-element list), held like :meth:`open_records`."""
        ...

    def record(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        """Record ``dead_letter_id`` whatever its status (not held), or ``None``."""
        ...

    def mark(self, dead_letter_id: int, change: RestoreDecision) -> None:
        """Store a restore attempt's result on the record."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only what happened inside."""
        ...


class AsyncConsumerTx(Protocol):
    """A :class:`ConsumerTx` for ``async def`` handlers: the steps run through :meth:`run_sync`, the
    handler awaits with ``session`` (an :class:`~sqlalchemy.ext.asyncio.AsyncSession` for PostgreSQL)."""

    session: Any

    async def run_sync(self, fn: Callable[[ConsumerTx], _T]) -> _T:
        """Run ``fn`` with the sync form of this transaction."""
        ...

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction (see :meth:`ConsumerTx.savepoint`)."""
        ...


class ConsumerStore(Protocol):
    """Where the consumer and the listener restore job keep their state."""

    dead_letters: ListenerDeadLetters

    rolls_back_handler_writes: bool
    """Whether a transaction that fails undoes the handler's writes too (SQL: yes; MongoDB: no, so
    the worker applies one event per unit there: a failed chunk's retry would run handlers twice)."""

    def transaction(self) -> AbstractContextManager[ConsumerTx]:
        """Begin a transaction: committed when the block ends, rolled back when it raises."""
        ...

    def async_transaction(self) -> AbstractAsyncContextManager[AsyncConsumerTx]:
        """:meth:`transaction` for ``async def`` handlers."""
        ...

    def run_async(self, work: Callable[[ConsumerStore], Awaitable[_T]]) -> _T:
        """Run async ``work`` to the end from sync code, on a store that can open async transactions."""
        ...

    def store_alive(self) -> bool:
        """Whether the database answers now."""
        ...

    def is_connection_error(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or its cause) says the connection failed, not the statement."""
        ...


class SyncTxAsAsync:
    """An :class:`AsyncConsumerTx` over a sync :class:`ConsumerTx`: nothing in it ever suspends, so
    one ``async`` core can serve both paths (the fake's async transaction, the sync restore)."""

    def __init__(self, tx: ConsumerTx) -> None:
        self.tx = tx
        self.session = tx.session

    async def run_sync(self, fn: Callable[[ConsumerTx], _T]) -> _T:
        return fn(self.tx)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        with self.tx.savepoint():
            yield
