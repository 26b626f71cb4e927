"""Count a relay's work into :class:`~kafkaguard.metrics.registry.Metrics` (a ``Relay(hook=...)``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from kafkaguard.db.columns import PublishSource
from kafkaguard.metrics.registry import Metrics
from kafkaguard.relay.deliver import Sent


class RelayMetrics:
    """A :class:`~kafkaguard.relay.worker.RelayHook`: published and dead-lettered counters, batch
    latency and event age histograms, error and store outage counters, the time of the last success.
    Called after the settle committed, so a counted event is never rolled back."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def settled(self, published: Sequence[Sent], dead_lettered: Sequence[Sent], seconds: float) -> None:
        """See :meth:`~kafkaguard.relay.worker.RelayHook.settled`."""
        m = self.metrics
        now = datetime.now(UTC)
        m.relay_publish_seconds.observe(seconds)
        for topic, count in Counter(item.topic for item in published).items():
            m.relay_published.labels(topic).inc(count)
        age = m.relay_event_age_seconds
        for item in published:
            if item.row.occurred_at is not None:  # always set on a published row (to_message requires it)
                age.observe(max(0.0, (now - item.row.occurred_at).total_seconds()))
        for item in dead_lettered:
            error = type(item.error).__name__ if item.error is not None else "-"
            m.publisher_dead_letters.labels(PublishSource.OUTBOX.value, error).inc()
        if published:  # progress, even inside a round that fails later
            m.relay_last_success.set_to_current_time()

    def error(self, kind: str) -> None:
        """See :meth:`~kafkaguard.relay.worker.RelayHook.error`."""
        self.metrics.relay_errors.labels(kind).inc()
        if kind == "database":
            self.metrics.store_outages.labels("relay").inc()

    def succeeded(self) -> None:
        """See :meth:`~kafkaguard.relay.worker.RelayHook.succeeded`."""
        self.metrics.relay_last_success.set_to_current_time()


def relay_metrics(metrics: Metrics | None) -> RelayMetrics | None:
    """The relay hook of ``metrics`` (None: no metrics, no hook)."""
    return RelayMetrics(metrics) if metrics is not None else None
