"""The counters and histograms kafkaguard's workers update, in a registry of their own.

One :class:`Metrics` per process (no global registry: tests make as many as they like). Names
follow Prometheus conventions: ``kafkaguard_<what>_<unit>``, counters end in ``_total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    """Every metric a kafkaguard worker exposes; pass one instance to the relay, consumer and restore jobs."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        self.relay_published = Counter(
            "kafkaguard_relay_published", "Outbox events acknowledged by Kafka.", ["topic"], registry=r
        )
        self.relay_publish_seconds = Histogram(
            "kafkaguard_relay_publish_seconds", "Time from claiming a batch to its last ack.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.relay_event_age_seconds = Histogram(
            "kafkaguard_relay_event_age_seconds", "Time from an outbox row's insert to its ack.",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.relay_errors = Counter("kafkaguard_relay_errors", "Relay rounds that failed.", ["kind"], registry=r)
        self.publisher_dead_letters = Counter(
            "kafkaguard_publisher_dead_lettered", "Events written to the publisher dead-letter store.",
            ["source", "error_class"], registry=r,
        )  # fmt: skip
        self.consumer_applied = Counter(
            "kafkaguard_consumer_applied", "Events whose effect was committed.", ["group", "type"], registry=r
        )
        self.consumer_duplicates = Counter(
            "kafkaguard_consumer_duplicates", "Events skipped as already applied (inbox).", ["group"], registry=r
        )
        self.consumer_retries = Counter(
            "kafkaguard_consumer_retries", "In-process handler retries.", ["group", "type"], registry=r
        )
        self.consumer_dead_letters = Counter(
            "kafkaguard_consumer_dead_lettered", "Messages written to the listener dead-letter store.",
            ["group", "reason"], registry=r,
        )  # fmt: skip
        self.consumer_parked = Counter(
            "kafkaguard_consumer_parked",
            "Events parked behind an open dead letter of their key.",
            ["group"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "kafkaguard_consumer_lag", "Messages between the committed offset and the high watermark.",
            ["group", "topic", "partition"], registry=r,
        )  # fmt: skip
        self.restore_outcomes = Counter(
            "kafkaguard_restore_outcomes", "Restore attempts by store and outcome.", ["store", "outcome"], registry=r
        )
