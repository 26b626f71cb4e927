"""Count a consumer worker's outcomes into :class:`~kafkaguard.metrics.registry.Metrics`."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

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
    worker's thread: confluent-kafka's consumer is not to be called from two threads at once.
    A partition that is no longer in ``lag()`` (revoked) loses its series."""
    last = [0.0]
    shown: set[tuple[str, int]] = set()

    def tick() -> None:
        if time.monotonic() - last[0] < every:
            return
        last[0] = time.monotonic()
        now = lag()
        for (topic, partition), value in now.items():
            metrics.consumer_lag.labels(group, topic, str(partition)).set(value)
        # A partition assigned elsewhere since: its new owner reports it; a frozen value here would be
        # counted twice by sum() and never change.
        for topic, partition in shown - set(now):
            metrics.consumer_lag.remove(group, topic, str(partition))
        shown.clear()
        shown.update(now)

    return tick


def outcome_counter(metrics: Metrics, group: str) -> Callable[[Record, Outcome], None]:
    """A ``Worker(on_outcome=...)`` hook: applied / duplicate / parked / dead-lettered / id conflict
    counters, and the applied events' age (from their Kafka timestamp).

    Called after the outcome is durable, so a counted event is never rolled back. The group's
    duplicate, parked and id-conflict series start at 0.
    """
    for counter in (metrics.consumer_duplicates, metrics.consumer_parked, metrics.consumer_id_conflicts):
        counter.labels(group)
    age = metrics.consumer_event_age_seconds.labels(group)

    def count(record: Record, outcome: Outcome) -> None:
        if outcome is Outcome.APPLIED:
            metrics.consumer_applied.labels(group, _event_type(record)).inc()
            if record.timestamp is not None:
                age.observe(max(0.0, (datetime.now(UTC) - record.timestamp).total_seconds()))
        elif outcome is Outcome.DUPLICATE:
            metrics.consumer_duplicates.labels(group).inc()
        elif outcome is Outcome.PARKED:
            metrics.consumer_parked.labels(group).inc()
        elif outcome is Outcome.DEAD_LETTERED:
            metrics.consumer_dead_letters.labels(group, "dead_lettered").inc()
        elif outcome is Outcome.ID_CONFLICT:
            metrics.consumer_id_conflicts.labels(group).inc()

    return count


def store_outage_counter(metrics: Metrics) -> Callable[[], None]:
    """A ``Worker.on_store_outage`` hook: one ``kafkaguard_store_outages_total{component="consumer"}``
    per round the consumer store was unreachable."""
    outages = metrics.store_outages.labels("consumer")
    return outages.inc


def retry_counter(metrics: Metrics, group: str) -> Callable[[str], None]:
    """An ``Applier.on_retry`` hook: ``kafkaguard_consumer_retries_total`` by group and event type."""

    def count(event_type: str) -> None:
        metrics.consumer_retries.labels(group, event_type).inc()

    return count
