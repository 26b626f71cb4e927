"""``MemoryOutbox``: the outbox in memory — the publisher's writer side and the relay's store port.

Keeps the promises of :mod:`kafkaguard.stores.outbox` (the contract suite runs the same tests
against it and PostgreSQL):

- writes become visible when the writer's SQLAlchemy session commits (at once without a session)
  and vanish with a rollback, like rows inserted in the caller's transaction;
- rows live in ``shard = hash(key) % 64`` (a fixed hash of the key, not PostgreSQL's ``hashtext``
  numbers), and a shard has at most one owner among the instances sharing one table
  (:meth:`MemoryOutbox.another_instance`);
- a claim returns visible unpublished rows of the owned shards in ``seq`` order, skipping keys with
  an open publisher dead letter in :attr:`dead_letters` when asked;
- a settle copies dead letters from their rows into :attr:`dead_letters` and removes (or marks) the
  settled rows, all at once.

No outage is simulated (``outage_errors`` is empty). Thread-safe.
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kafkaguard.db.columns import OUTBOX_SHARDS
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import DeadLetter, outbox_row
from kafkaguard.stores.outbox_rows import OutboxRow
from kafkaguard.testing.fakes.publisher_dead_letters import MemoryPublisherDeadLetters
from kafkaguard.testing.fakes.transactions import on_commit


def _now() -> datetime:
    return datetime.now(UTC)


def shard_of(key: str) -> int:
    """The fake's shard of ``key`` (stable across runs; PostgreSQL uses ``hashtext(key) & 63``)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) & (OUTBOX_SHARDS - 1)


class _Table:
    """What the instances of one outbox share: rows, shard owners, the wake-up condition."""

    def __init__(self, dead_letters: MemoryPublisherDeadLetters, clock: Callable[[], datetime]) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.seq = itertools.count(1)
        self.owners: dict[int, int] = {}
        self.instances: set[int] = set()
        self.dead_letters = dead_letters
        self.clock = clock
        self.changed = threading.Condition(threading.RLock())
        self.generation = 0


class MemoryOutbox:
    """The outbox in memory (see the module docstring); one object is one relay instance's view.

    ``dead_letters``: where settled dead letters go and which keys block a claim (default: a new
    :class:`~kafkaguard.testing.fakes.publisher_dead_letters.MemoryPublisherDeadLetters`).
    ``clock``: now, for ``published_at`` and the cleanup.
    """

    outage_errors: tuple[type[Exception], ...] = ()

    def __init__(
        self,
        dead_letters: MemoryPublisherDeadLetters | None = None,
        *,
        clock: Callable[[], datetime] = _now,
        _table: _Table | None = None,
    ) -> None:
        self._t = _table or _Table(dead_letters or MemoryPublisherDeadLetters(clock=clock), clock)
        self._id = id(self)
        self._connected = False
        self._seen = 0

    @property
    def dead_letters(self) -> MemoryPublisherDeadLetters:
        """The publisher dead-letter store this outbox settles into."""
        return self._t.dead_letters

    def another_instance(self) -> MemoryOutbox:
        """A second relay instance's view of the same table (shares rows, shard owners, dead letters)."""
        return MemoryOutbox(_table=self._t)

    # -- writer (the publisher's side)

    def add(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """Add ``events`` in order; visible when ``session`` commits (at once when None).

        Raises :class:`~kafkaguard.errors.EnvelopeError` at once for an event the real outbox
        cannot store (:func:`~kafkaguard.stores.outbox.check_storable`).
        """
        rows = [outbox_row(e, topic=topic) for e in events]
        on_commit(session, lambda: self._insert(rows))

    async def add_async(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """:meth:`add` for an ``AsyncSession`` (the same: nothing here waits)."""
        self.add(session, events, topic=topic)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self._t.changed:
            now = self._t.clock()
            for row in rows:
                row_id = str(row["id"])
                if row_id in self._t.rows:
                    raise ValueError(f"outbox row {row_id} exists (the real outbox refuses a duplicate id)")
                self._t.rows[row_id] = {
                    **copy.deepcopy(row),
                    "id": row_id,
                    "seq": next(self._t.seq),
                    "shard": shard_of(row["aggregateid"]),
                    "created_at": now,
                    "published_at": None,
                }
            self._t.generation += 1
            self._t.changed.notify_all()

    # -- assertions

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Copies of the visible rows in ``seq`` order (published ones too while kept)."""
        with self._t.changed:
            return [copy.deepcopy(r) for r in sorted(self._t.rows.values(), key=lambda r: r["seq"])]

    # -- the relay's store port

    @property
    def connected(self) -> bool:
        """See :attr:`~kafkaguard.stores.outbox.OutboxStore.connected`."""
        return self._connected

    def connect(self) -> str:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.connect`."""
        with self._t.changed:
            self._t.instances.add(self._id)
            self._connected = True
        return "memory"

    def close(self) -> None:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.close` (frees this instance's shards)."""
        with self._t.changed:
            self._t.instances.discard(self._id)
            for shard in [s for s, owner in self._t.owners.items() if owner == self._id]:
                del self._t.owners[shard]
            self._connected = False

    def live_instances(self) -> int:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.live_instances`."""
        with self._t.changed:
            return max(1, len(self._t.instances))

    def try_lock_shards(self, candidates: Sequence[int], limit: int) -> list[int]:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.try_lock_shards`."""
        taken: list[int] = []
        with self._t.changed:
            for shard in candidates:
                if len(taken) >= limit:
                    break
                if self._t.owners.setdefault(shard, self._id) == self._id:
                    taken.append(shard)
        return taken

    def unlock_shards(self, shards: Sequence[int]) -> None:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.unlock_shards`."""
        with self._t.changed:
            for shard in shards:
                if self._t.owners.get(shard) == self._id:
                    del self._t.owners[shard]

    def claim(
        self, shards: Sequence[int], limit: int, *, skip_blocked_keys: bool, in_flight: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.claim`."""
        wanted, skip = set(shards), set(in_flight)
        blocked = self.dead_letters.open_keys() if skip_blocked_keys else set()
        with self._t.changed:
            rows = sorted(
                (
                    r
                    for r in self._t.rows.values()
                    if r["shard"] in wanted
                    and r["published_at"] is None
                    and r["id"] not in skip
                    and r["aggregateid"] not in blocked
                ),
                key=lambda r: r["seq"],
            )[:limit]
            return [self._claimed(r) for r in rows]

    @staticmethod
    def _claimed(r: dict[str, Any]) -> OutboxRow:
        return OutboxRow(
            r["id"],
            r["seq"],
            r["aggregatetype"],
            r["aggregateid"],
            r["type"],
            json.dumps(r["payload"], default=str),
            json.dumps(r["headers"], default=str) if r["headers"] else None,
            r["occurred_at"],
            r["schema_version"],
            r["topic"],
        )

    def settle(self, dead_letters: Sequence[DeadLetter], done: Sequence[str], *, delete: bool) -> int:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.settle` (never a last resort here)."""
        with self._t.changed:
            for letter in dead_letters:
                row = self._t.rows.get(letter.outbox_id)
                if row is not None:
                    self.dead_letters.insert(_from_row(row, letter.params))
            now = self._t.clock()
            for row_id in done:
                if delete:
                    self._t.rows.pop(row_id, None)
                elif row_id in self._t.rows:
                    self._t.rows[row_id]["published_at"] = now
        return 0

    def cleanup_published(self, older_than_seconds: float, limit: int = 1000) -> int:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.cleanup_published`."""
        with self._t.changed:
            cutoff = self._t.clock() - timedelta(seconds=older_than_seconds)
            old = [i for i, r in self._t.rows.items() if r["published_at"] is not None and r["published_at"] < cutoff]
            for row_id in old[:limit]:
                del self._t.rows[row_id]
            return min(len(old), limit)

    def backlog(self) -> int:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.backlog`."""
        with self._t.changed:
            return sum(1 for r in self._t.rows.values() if r["published_at"] is None)

    def wait_for_work(self, timeout: float) -> bool:
        """See :meth:`~kafkaguard.stores.outbox.OutboxStore.wait_for_work` (new rows since the last call)."""
        with self._t.changed:
            if self._t.generation == self._seen:
                self._t.changed.wait(timeout)
            woke = self._t.generation != self._seen
            self._seen = self._t.generation
            return woke


def _from_row(row: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """The dead letter of an outbox row as :data:`~kafkaguard.stores.publisher_dead_letters.FROM_OUTBOX_SQL`
    copies it (key NULL when empty, aggregate type from the type when empty)."""
    return {
        "event_id": uuid.UUID(row["id"]),
        "key": row["aggregateid"] or None,
        "type": row["type"],
        "aggregate_type": row["aggregatetype"] or row["type"].split(".")[0],
        "topic": params["topic"],
        "payload": row["payload"],
        "headers": row["headers"],
        "occurred_at": row["occurred_at"],
        "schema_version": row["schema_version"],
        "source": params["source"],
        "status": params["status"],
        "attempts": params["attempts"],
        "last_error_class": params["last_error_class"],
        "last_error_message": params["last_error_message"],
        "history": json.loads(params["history"]),
    }
