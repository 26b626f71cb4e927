"""Count a consumer worker's outcomes into :class:`~kafkaguard.metrics.registry.Metrics`."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafkaguard import headers as H
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.metrics.registry import Metrics


def _event_type(record: Record) -> str:
    for name, value in record.headers:
        if name == H.TYPE and value is not None:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return "-"
    return "-"


def lag_reporter(
    metrics: Metrics, group: str, lag: Callable[[], dict[tuple[str, int], int]], *, every: float = 5.0
) -> Callable[[], None]:
    """A ``Worker(on_tick=...)`` hook refreshing the consumer-lag gauge from ``lag()`` at most every
    ``every`` seconds, also while idle (so the gauge never freezes at a stale value). It runs in the
    worker's thread: confluent-kafka's consumer is not to be called from two threads at once."""
    last = [0.0]

    def tick() -> None:
        if time.monotonic() - last[0] < every:
            return
        last[0] = time.monotonic()
        for (topic, partition), value in lag().items():
            metrics.consumer_lag.labels(group, topic, str(partition)).set(value)

    return tick


def outcome_counter(metrics: Metrics, group: str) -> Callable[[Record, Outcome], None]:
    """A ``Worker(on_outcome=...)`` hook: applied / duplicate / parked / dead-lettered counters.

    Called after the outcome is durable, so a counted event is never rolled back.
    """

    def count(record: Record, outcome: Outcome) -> None:
        if outcome is Outcome.APPLIED:
            metrics.consumer_applied.labels(group, _event_type(record)).inc()
        elif outcome is Outcome.DUPLICATE:
            metrics.consumer_duplicates.labels(group).inc()
        elif outcome is Outcome.PARKED:
            metrics.consumer_parked.labels(group).inc()
        elif outcome is Outcome.DEAD_LETTERED:
            metrics.consumer_dead_letters.labels(group, "dead_lettered").inc()

    return count
