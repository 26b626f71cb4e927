"""Faults injected with a plain Kafka client: duplicate deliveries and poison messages.

Neither goes through kafkaguard: they are what another producer (or a replaying operator) could
put on the topic. Poison messages use keys outside the workload's (``poison-N`` or none), so
parking them never blocks a workload key.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer

from chaos.security import client_security
from kafkaguard import headers as H


def _producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, **client_security()})


def duplicate_messages(
    bootstrap: str, topic: str, *, every: int = 10, limit: int = 100_000, timeout: float = 20.0
) -> int:
    """Read ``topic`` from the start and produce again every ``every``-th message (same partition, key,
    value, headers); return how many copies were acknowledged."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-dup-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         **client_security()})  # fmt: skip
    consumer.subscribe([topic])
    producer = _producer(bootstrap)
    seen = copied = empty = 0
    acked: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        # Stop after three empty polls once messages came (the topic is read), or at the deadline.
        while time.monotonic() < deadline and empty < 3 and seen < limit:
            batch = consumer.consume(500, 1.0)
            empty = empty + 1 if not batch and seen else 0
            for msg in batch:
                if msg.error() is not None:
                    continue
                seen += 1
                if seen % every == 0:
                    # Onto the original's partition, as a producer retry or a relay's re-send lands:
                    # librdkafka's default partitioner is not Java's murmur2, so a copy left to it would
                    # sit on another partition and could be applied before the key's earlier events.
                    same = msg.partition() or 0
                    producer.produce(topic, msg.value(), msg.key(), partition=same, headers=msg.headers(),
                                     on_delivery=lambda err, _m: acked.append(0 if err else 1))  # fmt: skip
                    copied += 1
            producer.poll(0)
    finally:
        consumer.close()
    producer.flush(30)
    return sum(acked)


def poison_messages(bootstrap: str, topic: str, count: int = 20) -> int:
    """Produce ``count`` messages a consumer cannot apply (not JSON, no headers, unknown type, no key,
    a JSON array); return how many were acknowledged."""
    producer = _producer(bootstrap)
    acked: list[int] = []
    for n in range(count):
        key: bytes | None = f"poison-{n}".encode()
        good = [(H.EVENT_ID, str(uuid.uuid4()).encode()), (H.TYPE, b"chaos.written")]
        shape = n % 5
        if shape == 0:
            value, headers = b"\xff\xfe not json", good
        elif shape == 1:
            value, headers = b'{"seq": 1}', []
        elif shape == 2:
            value, headers = b'{"seq": 1}', [(H.EVENT_ID, str(uuid.uuid4()).encode()), (H.TYPE, b"chaos.unknown")]
        elif shape == 3:
            value, headers, key = b'{"seq": 1}', good, None
        else:
            value, headers = b"[1, 2, 3]", good
        producer.produce(
            topic, value, key, headers=list(headers), on_delivery=lambda err, _m: acked.append(0 if err else 1)
        )
    producer.flush(30)
    return sum(acked)
