"""The counters and histograms kafkaguard's workers update, in a registry of their own.

One :class:`Metrics` per process (no global registry: tests make as many as they like). Names
follow Prometheus conventions: ``kafkaguard_<what>_<unit>``, counters end in ``_total``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


PARTS = frozenset({"relay", "consumer", "restore"})
"""The workers whose metrics a :class:`Metrics` can expose."""


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
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.relay_errors = Counter("kafkaguard_relay_errors", "Relay rounds that failed.", ["kind"], registry=r)
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
        self.restore_outcomes = Counter(
            "kafkaguard_restore_outcomes",
            "Restore attempts by store and outcome.",
            ["store", "outcome"],
            registry=restore,
        )
