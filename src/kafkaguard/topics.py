"""Topic names, derived from the aggregate type as Debezium's Outbox Event Router does, and who relays
the outbox to them (pure: publishers and the relay both read it without importing each other)."""

from __future__ import annotations

from enum import StrEnum

DEFAULT_TOPIC_PATTERN = "outbox.event.{aggregate_type}"
DLQ_SUFFIX = ".dlq"


def topic_for(aggregate_type: str, pattern: str = DEFAULT_TOPIC_PATTERN) -> str:
    """Return the topic of ``aggregate_type`` (``outbox.event.post`` for ``post`` by default)."""
    return pattern.format(aggregate_type=aggregate_type)


def dlq_topic(topic: str) -> str:
    """Return the dead-letter topic of ``topic`` (``<topic>.dlq``)."""
    return topic + DLQ_SUFFIX


class RelayKind(StrEnum):
    """Who relays the outbox: kafkaguard's relay worker, or Debezium's connector (see relay.debezium).

    The publisher reads it too: with ``debezium`` the outbox is written insert-then-delete.
    """

    KAFKAGUARD = "kafkaguard"
    DEBEZIUM = "debezium"
