"""The port the worker reads from: a narrow view of a Kafka consumer, and an in-memory fake.

Guarantee expected of an implementation: records of one partition come in offset order;
``commit`` is synchronous (returns once the broker stored the offsets, or raises
:class:`~kafkaguard.errors.ConsumerError`); ``seek`` makes the next ``poll`` return the partition
from that offset; ``on_revoke`` is called from inside ``poll``/``close`` before partitions go away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from kafkaguard.consumer.records import Record

TopicPartition = tuple[str, int]
RevokeCallback = Callable[[list[TopicPartition]], None]


class MessageSource(Protocol):
    """What the worker needs from a consumer client."""

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        """Up to ``max_records`` records (possibly none) within ``timeout`` seconds."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int], *, wait: bool = True) -> None:
        """Commit ``next offset to read`` per partition; ``wait=False`` returns before the broker answers
        (a commit that then fails only means redelivery, which the inbox absorbs)."""
        ...

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        """Read each partition again from the given offset."""
        ...

    def pause(self) -> None:
        """Stop fetching from every assigned partition (membership stays alive while polling)."""
        ...

    def resume(self) -> None:
        """Fetch again from every assigned partition."""
        ...

    def assignment(self) -> list[TopicPartition]:
        """Partitions currently assigned."""
        ...

    def set_on_revoke(self, callback: RevokeCallback) -> None:
        """Register the callback run before partitions are revoked (or lost)."""
        ...

    def close(self) -> None:
        """Leave the group (runs the revoke callback first)."""
        ...


class MemorySource:
    """In-memory :class:`MessageSource` for unit tests: one partition list per topic-partition.

    ``committed`` holds what was committed; ``paused`` whether fetching is paused.
    """

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.logs: dict[TopicPartition, list[Record]] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.paused = False
        self.closed = False
        self._on_revoke: RevokeCallback | None = None
        for r in records:
            self.append(r)

    def append(self, record: Record) -> None:
        log = self.logs.setdefault(record.tp, [])
        log.append(record)
        self.positions.setdefault(record.tp, 0)

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        if self.paused:
            return []
        out: list[Record] = []
        for tp, log in sorted(self.logs.items()):
            pos = self.positions[tp]
            take = [r for r in log if r.offset >= pos][: max_records - len(out)]
            if take:
                self.positions[tp] = take[-1].offset + 1
                out.extend(take)
            if len(out) >= max_records:
                break
        return out

    def commit(self, offsets: Mapping[TopicPartition, int], *, wait: bool = True) -> None:
        self.committed.update(offsets)

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        self.positions.update(positions)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def assignment(self) -> list[TopicPartition]:
        return sorted(self.logs)

    def set_on_revoke(self, callback: RevokeCallback) -> None:
        self._on_revoke = callback

    def close(self) -> None:
        if self._on_revoke is not None:
            self._on_revoke(self.assignment())
        self.closed = True
