"""Consumer lag per group, read from Kafka for the console's lag page (an admin client; nothing is consumed).

Lag of a partition = its high watermark minus the group's committed offset (0 when the group has
committed nothing there yet is shown as unknown, not as lag). Bounded: at most ``max_groups``
groups, every request under ``timeout_s`` seconds; Kafka unreachable or refusing is reported as a
message, never raised into the page. Uses the settings' ``kafka_security`` like every client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from kafkaguard.settings import KafkaguardSettings
from kafkaguard.transports.kafka_logging import client_logging


@dataclass(frozen=True)
class GroupLag:
    """One consumer group's lag: the total, and per topic."""

    group: str
    total: int
    topics: dict[str, int] = field(default_factory=dict)
    partitions: int = 0


@dataclass(frozen=True)
class LagReading:
    """What the page shows: groups by lag (largest first), or why Kafka could not be read."""

    groups: list[GroupLag]
    problem: str | None = None


def read_lag(settings: KafkaguardSettings, *, timeout_s: float = 5.0, max_groups: int = 50) -> LagReading:
    """Read every consumer group's committed offsets and the partitions' high watermarks."""
    config: dict[str, Any] = {**settings.kafka_producer_overrides(), "bootstrap.servers": settings.bootstrap_servers}
    # librdkafka's lines go through kafkaguard's Kafka log (one line per state, not raw stderr).
    config.update(client_logging(settings.bootstrap_servers, "console admin client", config=config)[1])
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout_s)  # raises when no broker answers (an empty group list would not)
        listed = admin.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
        if listed.errors and not listed.valid:
            raise listed.errors[0]
        names = sorted(g.group_id for g in listed.valid)[:max_groups]
        committed: dict[str, list[TopicPartition]] = {}
        for name in names:
            futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(name)],
                                                        request_timeout=timeout_s)  # fmt: skip
            result = futures[name].result(timeout=timeout_s)
            committed[name] = [tp for tp in result.topic_partitions or [] if tp.offset >= 0]
        wanted = {(tp.topic, tp.partition) for tps in committed.values() for tp in tps}
        high: dict[tuple[str, int], int] = {}
        if wanted:
            latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
            requests = {TopicPartition(t, p): latest for t, p in wanted}
            for tp, future in admin.list_offsets(requests, request_timeout=timeout_s).items():
                high[(tp.topic, tp.partition)] = int(future.result(timeout=timeout_s).offset)
    except (KafkaException, TimeoutError) as exc:
        return LagReading([], f"Kafka at {settings.bootstrap_servers} could not be read: {_reason(exc)}")
    groups = []
    for name, tps in committed.items():
        per_topic: dict[str, int] = {}
        for tp in tps:
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, high.get((tp.topic, tp.partition), 0) - tp.offset)
        groups.append(GroupLag(name, sum(per_topic.values()), per_topic, len(tps)))
    return LagReading(sorted(groups, key=lambda g: (-g.total, g.group)))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        error = exc.args[0]
        return str(getattr(error, "str", lambda: error)())
    return type(exc).__name__
