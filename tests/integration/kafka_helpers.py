"""Small plain-client helpers for integration tests (deliberately not kafkaguard's own code paths)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message


def _reader(bootstrap: str, topic: str) -> Consumer:
    """A plain consumer of ``topic`` from its first offset, in a group of its own, committing nothing."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    return consumer


def consume_values(bootstrap: str, topic: str, wanted: set[bytes], *, timeout: float = 60.0) -> set[bytes]:
    """Read ``topic`` from the beginning until every value of ``wanted`` arrived or the deadline passed;
    return the values read. (A count is not enough where a message whose delivery timed out may
    still have been written: Kafka's timeout does not mean "not stored".)"""
    consumer = _reader(bootstrap, topic)
    values: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while not wanted <= values and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            values.add(msg.value() or b"")
    finally:
        consumer.close()
    return values


def consume_all(bootstrap: str, topic: str, expected: int, *, timeout: float = 60.0) -> list[Message]:
    """Read ``topic`` from the beginning until ``expected`` messages arrived or the deadline passed."""
    consumer = _reader(bootstrap, topic)
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append(msg)
    finally:
        consumer.close()
    return got
