"""The counters and histograms kafkaguard's workers update, in a registry of their own.

One :class:`Metrics` per process (no global registry: tests make as many as they like). Names
follow Prometheus conventions: ``kafkaguard_<what>_<unit>``, counters end in ``_total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from kafkaguard.restore.report import RunReport

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""One batch or one run: milliseconds when healthy, up to the delivery timeout (30 s by default) when not."""

AGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)
"""An event's age when it is published or applied: sub-second in the steady state, minutes to hours
after an outage or a restore (a 30 s top bucket would put every late event into ``+Inf``)."""

RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
"""One restore run: a few queries when nothing is due, minutes when many keys are."""


PARTS = frozenset({"relay", "consumer", "restore"})
"""The workers whose metrics a :class:`Metrics` can expose."""

RESTORE_OUTCOMES = ("restored", "retried", "failed")
"""The outcomes a restore run counts (:class:`~kafkaguard.restore.report.RunReport`'s fields)."""


@dataclass
class Metrics:
    """Every metric a kafkaguard worker exposes; pass one instance to the relay, consumer and restore jobs.

    ``parts``: the workers of this process (default all); only their metrics are in ``registry``,
    so a consumer's ``/metrics`` does not show the relay's histograms at zero. The other metrics
    still exist as attributes (updating them is harmless) but are not exposed.
    """

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))
    parts: frozenset[str] = PARTS

    def __post_init__(self) -> None:
        unknown = set(self.parts) - PARTS
        if unknown:
            raise ValueError(f"unknown metrics parts {sorted(unknown)}; expected some of {sorted(PARTS)}")
        relay = self.registry if "relay" in self.parts else None
        consumer = self.registry if "consumer" in self.parts else None
        restore = self.registry if "restore" in self.parts else None
        r = relay
        self.relay_published = Counter(
            "kafkaguard_relay_published", "Outbox events acknowledged by Kafka.", ["topic"], registry=r
        )
        self.relay_publish_seconds = Histogram(
            "kafkaguard_relay_publish_seconds", "Time from claiming a batch to its last ack.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.relay_event_age_seconds = Histogram(
            "kafkaguard_relay_event_age_seconds", "Time from an outbox row's insert to its ack.",
            buckets=AGE_BUCKETS, registry=r,
        )  # fmt: skip
        self.relay_errors = Counter("kafkaguard_relay_errors", "Relay rounds that failed.", ["kind"], registry=r)
        self.relay_last_success = Gauge(
            "kafkaguard_relay_last_success_timestamp_seconds",
            "Unix time of the relay's last round that succeeded (a batch settled, or nothing was due); "
            "0 before the first.",
            registry=r,
        )
        self.publisher_dead_letters = Counter(
            "kafkaguard_publisher_dead_lettered", "Events written to the publisher dead-letter store.",
            ["source", "error_class"], registry=r,
        )  # fmt: skip
        self.consumer_applied = Counter(
            "kafkaguard_consumer_applied", "Events whose effect was committed.", ["group", "type"], registry=consumer
        )
        self.consumer_duplicates = Counter(
            "kafkaguard_consumer_duplicates", "Events skipped as already applied (inbox).", ["group"], registry=consumer
        )
        self.consumer_retries = Counter(
            "kafkaguard_consumer_retries", "In-process handler retries.", ["group", "type"], registry=consumer
        )
        self.consumer_dead_letters = Counter(
            "kafkaguard_consumer_dead_lettered", "Messages written to the listener dead-letter store.",
            ["group", "reason"], registry=consumer,
        )  # fmt: skip
        self.consumer_parked = Counter(
            "kafkaguard_consumer_parked",
            "Events parked behind an open dead letter of their key.",
            ["group"],
            registry=consumer,
        )
        self.consumer_lag = Gauge(
            "kafkaguard_consumer_lag", "Messages between the committed offset and the high watermark.",
            ["group", "topic", "partition"], registry=consumer,
        )  # fmt: skip
        self.consumer_id_conflicts = Counter(
            "kafkaguard_consumer_id_conflicts",
            "Events whose id the inbox holds with other content (never applied).",
            ["group"],
            registry=consumer,
        )
        self.consumer_event_age_seconds = Histogram(
            "kafkaguard_consumer_event_age_seconds", "Time from a message's Kafka timestamp to its effect's commit.",
            ["group"], buckets=AGE_BUCKETS, registry=consumer,
        )  # fmt: skip
        self.restore_outcomes = Counter(
            "kafkaguard_restore_outcomes",
            "Restore attempts by store and outcome.",
            ["store", "outcome"],
            registry=restore,
        )
        self.restore_run_seconds = Histogram(
            "kafkaguard_restore_run_seconds", "Duration of one restore run (the failed ones too).",
            ["store"], buckets=RUN_BUCKETS, registry=restore,
        )  # fmt: skip
        self.restore_last_run = Gauge(
            "kafkaguard_restore_last_run_timestamp_seconds",
            "Unix time of the last restore run that reached the database.",
            ["store"],
            registry=restore,
        )
        self.store_outages = Counter(
            "kafkaguard_store_outages",
            "Rounds in which a worker could not reach PostgreSQL (relay round, consumer probe, restore run).",
            ["component"],
            registry=self.registry if self.parts else None,
        )
        # Series that exist from the start, at 0, so rate() and increase() see the first event.
        for part in sorted(self.parts):
            self.store_outages.labels(part)
        if relay is not None:
            for kind in ("database", "kafka"):
                self.relay_errors.labels(kind)

    def restore_run(self, store: str, seconds: float, report: RunReport | None) -> None:
        """Count one restore run of ``store`` that took ``seconds``: its outcomes, or (``report`` None)
        an outage of the database (the run failed to reach it)."""
        self.restore_run_seconds.labels(store).observe(seconds)
        if report is None:
            self.store_outages.labels("restore").inc()
            return
        self.restore_last_run.labels(store).set_to_current_time()
        for outcome in RESTORE_OUTCOMES:
            self.restore_outcomes.labels(store, outcome).inc(getattr(report, outcome))

    def restore_store(self, store: str) -> None:
        """Create ``store``'s restore series at 0 (a restore worker serves the stores it runs only)."""
        for outcome in RESTORE_OUTCOMES:
            self.restore_outcomes.labels(store, outcome)
        self.restore_run_seconds.labels(store)
