"""Reconciliation read from the databases and the topics, never from in-memory counters.

- committed: writes journalled in ``content.content_writes`` (same transaction as the write);
- on_kafka: distinct event ids on the content topics (copies counts redeliveries, allowed);
- applied: rows in ``activity.member_activities``;
- lost: committed writes with no applied activity;
- duplicates: applications beyond the first (``apply_count - 1``, summed);
- phantom: applied activities of writes that never committed.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass

import psycopg
from confluent_kafka import Consumer, TopicPartition
from psycopg import sql

from kafkaguard import KafkaguardSettings


@dataclass
class Reconciliation:
    committed: int
    on_kafka: int
    kafka_copies: int
    applied: int
    publisher_dead_letters: int
    publisher_restored: int
    listener_dead_letters: int
    listener_restored: int
    open_dead_letters: int
    lost: int
    duplicates: int
    phantom: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.phantom == 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def topic_event_ids(bootstrap: str, topics: list[str], timeout: float = 60.0) -> list[str]:
    """Every ``event_id`` header on ``topics``, read from the beginning to the high watermarks."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reconcile-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            **KafkaguardSettings().kafka_security.client_config(),  # TLS/SASL as the demo's workers connect
        }
    )
    ids: list[str] = []
    try:
        meta = consumer.list_topics(timeout=10)
        parts: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            if topic not in meta.topics:
                continue
            for p in meta.topics[topic].partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    parts.append(TopicPartition(topic, p, low))
                    ends[(topic, p)] = high
        if not parts:
            return ids
        consumer.assign(parts)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            event_id = dict(msg.headers() or []).get("event_id")
            if event_id:
                ids.append(event_id.decode())
            pos = (msg.topic(), msg.partition())
            if pos in ends and msg.offset() + 1 >= ends[pos]:
                del ends[pos]
    finally:
        consumer.close()
    return ids


def reconcile(conninfo: str, bootstrap: str, topics: list[str], *, content: str, activity: str) -> Reconciliation:
    """Count everything from the databases (``content``/``activity`` schemas) and the topics."""
    kafka_ids = topic_event_ids(bootstrap, topics)
    names = {"c": sql.Identifier(content), "a": sql.Identifier(activity)}
    with psycopg.connect(conninfo) as conn:

        def one(query: str) -> int:
            # Schema names are quoted identifiers; there are no other inputs.
            row = conn.execute(sql.SQL(query).format(**names)).fetchone()  # type: ignore[arg-type]
            return int(row[0] or 0) if row else 0

        return Reconciliation(
            committed=one("SELECT count(*) FROM {c}.content_writes"),
            on_kafka=len(set(kafka_ids)),
            kafka_copies=len(kafka_ids),
            applied=one("SELECT count(*) FROM {a}.member_activities"),
            publisher_dead_letters=one("SELECT count(*) FROM {c}.kafka_publisher_dead_letters"),
            publisher_restored=one("SELECT count(*) FROM {c}.kafka_publisher_dead_letters WHERE status='restored'"),
            listener_dead_letters=one("SELECT count(*) FROM {a}.kafka_listener_dead_letters"),
            listener_restored=one("SELECT count(*) FROM {a}.kafka_listener_dead_letters WHERE status='restored'"),
            open_dead_letters=one(
                "SELECT (SELECT count(*) FROM {c}.kafka_publisher_dead_letters WHERE status IN ('pending','failed'))"
                " + (SELECT count(*) FROM {a}.kafka_listener_dead_letters"
                " WHERE status IN ('pending','parked','failed'))"
            ),
            lost=one(
                "SELECT count(*) FROM {c}.content_writes w WHERE NOT EXISTS "
                "(SELECT 1 FROM {a}.member_activities m WHERE m.event_id = w.event_id)"
            ),
            duplicates=one("SELECT coalesce(sum(apply_count - 1), 0) FROM {a}.member_activities"),
            phantom=one(
                "SELECT count(*) FROM {a}.member_activities m WHERE NOT EXISTS "
                "(SELECT 1 FROM {c}.content_writes w WHERE w.event_id = m.event_id)"
            ),
        )
