"""Pure consumer decisions and the worker loop over the in-memory source (no Kafka, no database)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from kafkaguard.consumer import MemorySource, Outcome, Record, Worker
from kafkaguard.consumer.decisions import OffsetTracker, after_failure, rewind_positions
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import GiveUp, Retry, RetryPolicy
from kafkaguard.testing import MemoryConsumerStore

SETTINGS = ConsumerSettings(retry=RetryPolicy(max_attempts=3, backoff=Fixed(seconds=0.5)))


def rec(offset: int, partition: int = 0, topic: str = "t") -> Record:
    return Record(topic, partition, offset, b"k", b"{}")


@pytest.mark.parametrize(
    ("attempt", "exc", "expected"),
    [
        (1, TimeoutError(), Retry(0.5)),
        (2, ConnectionError(), Retry(0.5)),
        (3, TimeoutError(), GiveUp("exhausted")),
        (1, ValueError(), GiveUp("permanent")),
        (1, KeyError("x"), GiveUp("permanent")),
        (1, RuntimeError(), Retry(0.5)),  # unlisted: the classifier's default (retriable)
    ],
)
def test_after_failure(attempt: int, exc: Exception, expected: Retry | GiveUp) -> None:
    assert after_failure(attempt, exc, SETTINGS) == expected


def test_rewind_positions_picks_the_lowest_offset_per_partition() -> None:
    assert rewind_positions([rec(7), rec(5), rec(9, 1), rec(6)]) == {("t", 0): 5, ("t", 1): 9}


def test_offset_tracker_commits_next_offsets_and_forgets() -> None:
    t = OffsetTracker()
    t.done(rec(3))
    t.done(rec(4))
    t.done(rec(0, 1))
    assert t.pending() == {("t", 0): 5, ("t", 1): 1}
    assert t.pending([("t", 1)]) == {("t", 1): 1}
    t.committed({("t", 0): 5})
    t.forget([("t", 1)])
    assert t.pending() == {}


class FakeApplier:
    """Stands in for :class:`Applier`: outcomes from a function; the store goes down on demand."""

    def __init__(self, decide: Callable[[Record], Outcome]) -> None:
        self.settings = ConsumerSettings(poll_timeout=0.01, store_backoff_max=0.05, batch_size=1)  # per-event path
        self.stop = threading.Event()
        self.group = "g"
        self.store = MemoryConsumerStore()
        self.decide = decide
        self.down_at: int | None = None
        self.alive_after = 0
        self.seen: list[int] = []

    def process(self, record: Record) -> Outcome:
        if self.down_at == record.offset:
            self.down_at = None
            raise StoreUnavailableError("down")
        self.seen.append(record.offset)
        if len(self.seen) >= 6:
            self.stop.set()
        return self.decide(record)

    def store_alive(self) -> bool:
        self.alive_after -= 1
        return self.alive_after <= 0

    def close(self) -> None:
        pass


def test_worker_commits_after_outcomes_and_rewinds_after_an_outage() -> None:
    source = MemorySource([rec(i) for i in range(6)])
    applier = FakeApplier(lambda r: Outcome.APPLIED)
    applier.down_at = 3
    applier.alive_after = 2
    worker = Worker(source, applier)  # type: ignore[arg-type]
    worker.run()
    assert applier.seen == [0, 1, 2, 3, 4, 5]  # 3 was not skipped after the outage
    assert source.committed == {("t", 0): 6}
    assert worker.stats["store_outages"] == 1
    assert source.closed and not source.paused
