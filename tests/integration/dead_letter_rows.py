"""Insert dead-letter rows directly, as the publishing paths would, for restore-job tests."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from kafkaguard.envelope import Event


def insert_publisher_dead_letter(conn: Connection, event: Event, topic: str, *, source: str = "direct") -> int:
    row: Any = conn.execute(
        text(
            "INSERT INTO kafka_publisher_dead_letters (event_id, key, type, aggregate_type, topic, payload, headers, "
            "occurred_at, schema_version, source, last_error_class, last_error_message, history) VALUES "
            "(:event_id, :key, :type, :agg, :topic, CAST(:payload AS jsonb), CAST(:headers AS jsonb), :occurred_at, "
            ":version, :source, 'KafkaException', 'broker down', '[]'::jsonb) RETURNING id"
        ),
        {
            "event_id": event.event_id,
            "key": event.key,
            "type": event.type,
            "agg": event.aggregate_type,
            "topic": topic,
            "payload": json.dumps(event.payload),
            "headers": json.dumps(dict(event.headers)),
            "occurred_at": event.occurred_at,
            "version": event.schema_version,
            "source": source,
        },
    ).scalar_one()
    return int(row)
