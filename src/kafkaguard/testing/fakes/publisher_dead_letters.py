"""``MemoryPublisherDeadLetters``: the publisher dead-letter store in memory.

Keeps the promises of :mod:`kafkaguard.stores.publisher_dead_letters` (the contract suite runs the
same tests against it and PostgreSQL): inserts idempotent per event id and visible when the
writer's session commits; due heads in id order, a key's later records behind an open earlier one;
one holder per key at a time. Records are dicts with the table's columns (``payload`` and
``headers`` handed out as JSON text, as the PostgreSQL adapter reads them). Thread-safe.

For assertions: :attr:`records`, :meth:`by_event`, :meth:`open_keys`.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus, PublishSource
from kafkaguard.envelope import Event
from kafkaguard.stores.publisher_dead_letters import dead_letter_values, outcome_params
from kafkaguard.stores.restore_decision import RestoreDecision
from kafkaguard.testing.fakes.transactions import on_commit

_OPEN_FOR_RESTORE = (DeadLetterStatus.PENDING.value, DeadLetterStatus.FAILED.value)


def _now() -> datetime:
    return datetime.now(UTC)


class MemoryHeldRecords:
    """:class:`~kafkaguard.stores.publisher_dead_letters.HeldRecords` of the fake (outcomes apply at once)."""

    def __init__(self, store: MemoryPublisherDeadLetters, records: list[dict[str, Any]]) -> None:
        self._store = store
        self.records = records

    def record_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        """See :meth:`~kafkaguard.stores.publisher_dead_letters.HeldRecords.record_outcome`."""
        self._store.apply_outcome(record_id, outcome, error)


class MemoryPublisherDeadLetters:
    """The publisher dead-letter store in memory (see the module docstring). ``clock``: now, for due times."""

    def __init__(self, *, clock: Callable[[], datetime] = _now) -> None:
        self.clock = clock
        self.records: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._held: set[Any] = set()
        self._next_id = 1

    # -- writers

    def add(
        self,
        session: Any,
        event: Event,
        *,
        topic: str,
        source: PublishSource,
        error: BaseException,
        attempts: int = 1,
    ) -> None:
        """Store a dead letter when ``session`` commits (at once when None); idempotent per event id."""
        values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
        on_commit(session, lambda: self.insert(values))

    def key_held(self, session: Any, key: str) -> bool:
        """Whether ``key`` has a ``pending`` or ``failed`` record (what the publisher holds a key behind)."""
        with self._lock:
            return any(r["key"] == key and r["status"] in _OPEN_FOR_RESTORE for r in self.records)

    def insert(self, values: dict[str, Any]) -> bool:
        """Insert one record of column ``values`` unless its event id is stored; return whether inserted."""
        with self._lock:
            event_id = uuid.UUID(str(values["event_id"]))
            if any(r["event_id"] == event_id for r in self.records):
                return False
            now = self.clock()
            record = {
                "status": DeadLetterStatus.PENDING.value,
                "attempts": 0,
                "headers": {},
                "schema_version": 1,
                "history": [],
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
                "restored_at": None,
                "restored_by": None,
                "last_error_class": None,
                "last_error_message": None,
                **copy.deepcopy(values),
                "event_id": event_id,
                "id": self._next_id,
            }
            self._next_id += 1
            self.records.append(record)
            return True

    # -- restore side

    def due_heads(self, limit: int) -> list[tuple[int, str | None]]:
        """See :meth:`~kafkaguard.stores.publisher_dead_letters.PublisherDeadLetterStore.due_heads`."""
        with self._lock:
            now = self.clock()
            blocked: set[str] = set()
            heads: list[tuple[int, str | None]] = []
            for r in self.records:  # id order
                key, status = r["key"], r["status"]
                if key is not None and key in blocked:
                    continue
                if status == DeadLetterStatus.PENDING.value and r["next_attempt_at"] <= now:
                    heads.append((r["id"], key))
                if key is not None and status in _OPEN_FOR_RESTORE:
                    blocked.add(key)
            return heads[:limit]

    def due_keyless(self, limit: int) -> list[int]:
        """See :meth:`~kafkaguard.stores.publisher_dead_letters.PublisherDeadLetterStore.due_keyless`."""
        with self._lock:
            now = self.clock()
            due = [
                r["id"]
                for r in self.records
                if r["key"] is None and r["status"] == DeadLetterStatus.PENDING.value and r["next_attempt_at"] <= now
            ]
            return due[:limit]

    @contextmanager
    def hold_key(self, key: str) -> Iterator[MemoryHeldRecords | None]:
        """See :meth:`~kafkaguard.stores.publisher_dead_letters.PublisherDeadLetterStore.hold_key`."""
        with self._hold(("key", key)) as held:
            if not held:
                yield None
                return
            with self._lock:
                rows = [self._as_read(r) for r in self.records if r["key"] == key and r["status"] in _OPEN_FOR_RESTORE]
            yield MemoryHeldRecords(self, rows)

    @contextmanager
    def hold_keyless(self, record_id: int) -> Iterator[MemoryHeldRecords | None]:
        """See :meth:`~kafkaguard.stores.publisher_dead_letters.PublisherDeadLetterStore.hold_keyless`."""
        with self._hold(("id", record_id)) as held:
            with self._lock:
                rows = [
                    self._as_read(r)
                    for r in self.records
                    if r["id"] == record_id and r["key"] is None and r["status"] == DeadLetterStatus.PENDING.value
                ]
            yield MemoryHeldRecords(self, rows) if held and rows else None

    @contextmanager
    def _hold(self, what: Any) -> Iterator[bool]:
        with self._lock:
            if what in self._held:
                taken = False
            else:
                self._held.add(what)
                taken = True
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._held.discard(what)

    def apply_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        """Write a restore outcome to record ``record_id`` (the PostgreSQL adapter's ``OUTCOME_SQL``)."""
        p = outcome_params(record_id, outcome, error)
        with self._lock:
            r = self._record(record_id)
            r.update(status=p["status"], attempts=p["attempts"], next_attempt_at=p["next"], updated_at=self.clock())
            r["history"] = [*r["history"], *json.loads(p["entry"])]
            if p["restored"]:
                r["restored_at"], r["restored_by"] = self.clock(), p["by"]
            if p["err_cls"] is not None:
                r["last_error_class"], r["last_error_message"] = p["err_cls"], p["err_msg"]

    # -- assertions

    def by_event(self, event_id: Any) -> dict[str, Any] | None:
        """A copy of the record of ``event_id`` (a UUID or its text), or None."""
        wanted = uuid.UUID(str(event_id))
        with self._lock:
            found = [r for r in self.records if r["event_id"] == wanted]
            return copy.deepcopy(found[0]) if found else None

    def open_keys(self) -> set[str]:
        """Keys with an open dead letter (``pending``, ``parked`` or ``failed``): they hold later events."""
        with self._lock:
            return {r["key"] for r in self.records if r["key"] is not None and r["status"] in OPEN_STATUSES}

    def _record(self, record_id: int) -> dict[str, Any]:
        for r in self.records:
            if r["id"] == record_id:
                return r
        raise KeyError(f"no publisher dead letter {record_id}")

    @staticmethod
    def _as_read(r: dict[str, Any]) -> dict[str, Any]:
        row = copy.deepcopy(r)
        row["payload"] = json.dumps(r["payload"], default=str)
        row["headers"] = json.dumps(r["headers"], default=str)
        return row
