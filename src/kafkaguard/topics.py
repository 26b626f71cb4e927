"""Topic names, derived from the aggregate type as Debezium's Outbox Event Router does."""

from __future__ import annotations

DEFAULT_TOPIC_PATTERN = "outbox.event.{aggregate_type}"
DLQ_SUFFIX = ".dlq"


def topic_for(aggregate_type: str, pattern: str = DEFAULT_TOPIC_PATTERN) -> str:
    """Return the topic of ``aggregate_type`` (``outbox.event.post`` for ``post`` by default)."""
    return pattern.format(aggregate_type=aggregate_type)


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic of ``topic`` (``<topic>.dlq``)."""
    return topic + DLQ_SUFFIX
