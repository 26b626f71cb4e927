"""Debezium's row of the relay table (issue 8): Kafka Connect + the Outbox Event Router on the same backlog.

Connect runs with kafkaguard's generated connector configuration (``kafkaguard.relay.debezium``) and
its producer set to ``acks=all`` with idempotence, like our relay. The connector is started (and its
replication slot created) on an empty outbox, then the backlog commits in one transaction; the time
runs from that commit until every row is on the topic (sum of the partitions' high watermarks), since
Debezium does not delete outbox rows. Start-up of the JVM is outside the timed window, as the
relays' process start is.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from bench.common import BenchDb, Stack, new_schema, new_topic, prefill, wait_until
from kafkaguard.testing import stacks


def _on_topic(bootstrap: str, topic: str, partitions: int = 3) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex[:6]}"})
    try:
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in range(partitions))
    finally:
        consumer.close()


def relay_rate(stack: Stack, rows: int, logs: Path) -> float:
    """Events/s of Debezium relaying a backlog of ``rows`` (commit → all on Kafka)."""
    db: BenchDb = new_schema(stack, "d")
    aggregate = f"d{uuid.uuid4().hex[:8]}"
    topic = new_topic(stack, aggregate)
    with stacks.debezium_relay(stack.bootstrap, stack.server.url(), db.schema, stack.server.conninfo()):
        prefill(db, rows, aggregate=aggregate)
        committed = time.perf_counter()
        wait_until(lambda: _on_topic(stack.bootstrap, topic) >= rows, 900, "Debezium to relay the backlog", every=0.1)
        elapsed = time.perf_counter() - committed
    return rows / elapsed
