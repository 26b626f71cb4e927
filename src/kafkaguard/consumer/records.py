"""A message as read from the broker, before any decoding (what a dead letter keeps verbatim)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

RawHeaders = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Record:
    """One Kafka message: position, raw key, value and headers, broker timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RawHeaders = field(default_factory=list)
    timestamp: datetime | None = None
    read_error: str | None = None
    """Set when the client could not read part of the message (e.g. a header name that is not UTF-8:
    confluent-kafka fails inside ``Message.headers()``); such a record is dead-lettered ``unreadable``
    with the bytes that could be read."""

    @property
    def tp(self) -> tuple[str, int]:
        """``(topic, partition)``: the unit of ordering and of committed offsets."""
        return (self.topic, self.partition)

    def where(self) -> str:
        """``topic[partition]@offset`` for log lines."""
        return f"{self.topic}[{self.partition}]@{self.offset}"
