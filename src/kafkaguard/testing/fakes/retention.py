"""``MemoryRetention``: the cleanup job's :class:`~kafkaguard.stores.retention.RetentionStore` in memory.

Keeps the same promise as :class:`~kafkaguard.stores.retention.PostgresRetention` (the contract
suite runs the same tests against both): a rule deletes only rows it lets go — published outbox
rows, inbox rows, restored or discarded dead letters — older than the age given, at most
``limit`` at a time; one holder of the cleanup lock at a time. Rows are dicts holding the columns
the rules read (``published_at``, ``processed_at``, ``status``, ``updated_at``). Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from kafkaguard.db import columns as C
from kafkaguard.stores.retention import Retention

_CLOSED = (C.DeadLetterStatus.RESTORED.value, C.DeadLetterStatus.DISCARDED.value)


def _published(row: dict[str, Any], cutoff: datetime) -> bool:
    return row.get("published_at") is not None and row["published_at"] < cutoff


def _processed(row: dict[str, Any], cutoff: datetime) -> bool:
    return bool(row["processed_at"] < cutoff)


def _closed(row: dict[str, Any], cutoff: datetime) -> bool:
    return row["status"] in _CLOSED and row["updated_at"] < cutoff


# The rules of stores/retention.RETENTIONS, by table, in Python (the contract suite keeps them equal).
_EXPIRED: dict[str, Callable[[dict[str, Any], datetime], bool]] = {
    C.OUTBOX: _published,
    C.INBOX: _processed,
    C.PUBLISHER_DEAD_LETTERS: _closed,
    C.LISTENER_DEAD_LETTERS: _closed,
}


class MemoryRetention:
    """Tables as lists of row dicts (:attr:`tables`); ``clock`` gives "now" (UTC)."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.tables: dict[str, list[dict[str, Any]]] = {table: [] for table in _EXPIRED}
        self._mutex = threading.Lock()
        self._lock = threading.Lock()

    def add(self, table: str, **row: Any) -> None:
        """Add a row to ``table`` (one of kafkaguard's tables, named as in ``db/columns``)."""
        with self._mutex:
            self.tables[table].append(row)

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """See :meth:`~kafkaguard.stores.retention.RetentionStore.exclusive`."""
        got = self._lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._lock.release()

    def delete_expired(self, rule: Retention, *, age: timedelta, limit: int) -> int:
        """See :meth:`~kafkaguard.stores.retention.RetentionStore.delete_expired`."""
        expired = _EXPIRED[rule.table]
        cutoff = self.clock() - age
        with self._mutex:
            rows = self.tables[rule.table]
            gone = [i for i, row in enumerate(rows) if expired(row, cutoff)][:limit]
            for i in reversed(gone):
                del rows[i]
        return len(gone)
