"""Dead letters as the consumer and the publisher leave them, and a console over them, for the console's tests.

Two listener failure groups with the same error class and different throwing frames (so the
grouping by frame shows), each key a head with parked records behind it; publisher dead letters
of a topic. Payloads carry a ``card`` field the tests redact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.pool import NullPool

from kafkaguard import raw_headers
from kafkaguard.console.fingerprint import group_id
from kafkaguard.console.settings import ConsoleSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.db.safe_text import bytes_text
from kafkaguard.envelope import Event
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase
from tests.integration.dead_letter_rows import insert_publisher_dead_letter

TOKEN = "console-test-token-7f3a"
ERROR = "tests.integration.consumer_app.BrokenKeyError"
FRAME_A = 'File "/srv/app/handlers.py", line 10, in apply_effect'
FRAME_B = 'File "/srv/app/handlers.py", line 42, in apply_other'
GROUP_A = group_id(ERROR, FRAME_A)
GROUP_B = group_id(ERROR, FRAME_B)


def stack(frame: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/srv/kafkaguard/consumer/apply.py", line 99, in apply\n    handler(event, ctx)\n'
        f"  {frame}\n    raise BrokenKeyError(key)\n{ERROR}: key is broken\n"
    )


@dataclass
class Seeded:
    """What was inserted: listener events per key (in order), their ids, and publisher events."""

    group: str
    keys_a: dict[str, list[Event]] = field(default_factory=dict)
    keys_b: dict[str, list[Event]] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(default_factory=dict)  # key -> record ids in order
    publisher: list[tuple[int, Event]] = field(default_factory=list)


LISTENER_SQL = """
INSERT INTO kafka_listener_dead_letters (consumer_group, topic, partition, "offset", key, raw_key, headers,
  raw_value, raw_headers, event_id, type, reason, error_class, error_message, stack, status, attempts)
VALUES (:group, 't-console', 0, :offset, :key, :raw_key, CAST(:headers AS jsonb), :raw_value, :raw_headers,
  :event_id, :type, :reason, :error_class, :message, :stack, :status, :attempts)
RETURNING id
"""


def _listener(conn: Any, group: str, event: Event, offset: int, *, head_status: str | None, frame: str) -> int:
    headers = event.kafka_headers()
    head = head_status is not None
    params = {
        "group": group, "offset": offset, "key": event.key, "raw_key": event.key.encode(),
        "headers": json.dumps({k: bytes_text(v) for k, v in headers}), "raw_value": event.payload_bytes(),
        "raw_headers": raw_headers.encode(headers), "event_id": event.event_id, "type": event.type,
        "reason": "handler_error" if head else "parked", "error_class": ERROR if head else None,
        "message": "key is broken" if head else None, "stack": stack(frame) if head else None,
        "status": head_status or "parked", "attempts": 1 if head else 0,
    }  # fmt: skip
    return int(conn.execute(text(LISTENER_SQL), params).scalar_one())


def seed(db: TestDatabase, group: str, *, publisher_topic: str | None = None, publisher_count: int = 3) -> Seeded:
    """Listener group A (keys a1: 3 records, a2: 2 with a failed head, a3: 1), group B (b1: 2), publisher records."""
    seeded = Seeded(group)
    plan = [("a1", 3, "pending", FRAME_A), ("a2", 2, "failed", FRAME_A), ("a3", 1, "pending", FRAME_A),
            ("b1", 2, "pending", FRAME_B)]  # fmt: skip
    engine = engine_of(db)
    offset = 1
    with engine.begin() as conn:
        for key, count, head_status, frame in plan:
            events = [Event(type="test.applied", key=key, payload={"seq": n, "card": f"4111-{key}-{n}"})
                      for n in range(count)]  # fmt: skip
            (seeded.keys_a if frame == FRAME_A else seeded.keys_b)[key] = events
            seeded.ids[key] = []
            for n, event in enumerate(events):
                record_id = _listener(conn, group, event, offset, head_status=head_status if n == 0 else None,
                                      frame=frame)  # fmt: skip
                seeded.ids[key].append(record_id)
                offset += 1
        if publisher_topic is not None:
            for n in range(publisher_count):
                event = Event(type="order.placed", key=f"order-{n}", aggregate_type="order",
                              payload={"n": n, "card": "4111"})  # fmt: skip
                seeded.publisher.append((insert_publisher_dead_letter(conn, event, publisher_topic), event))
    engine.dispose()
    return seeded


def engine_of(db: TestDatabase) -> Engine:
    """An engine on ``db`` without a pool: its connections close when released, so the tests leave
    none open behind them (later tests of the session check that)."""
    return sync_engine(db.server.url(), schema=db.schema, poolclass=NullPool)


def console_settings(db: TestDatabase, bootstrap: str, **console: Any) -> KafkaguardSettings:
    values: dict[str, Any] = {"operator_token": TOKEN, "redact_fields": ["card"], **console}
    return KafkaguardSettings(
        database_url=db.server.url(), db_schema=db.schema, bootstrap_servers=bootstrap,
        console=ConsoleSettings(**values),
    )  # fmt: skip


def rows(db: TestDatabase, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.conninfo) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def listener_snapshot(db: TestDatabase) -> list[tuple[Any, ...]]:
    return rows(
        db, "SELECT id, status, attempts, history::text, updated_at FROM kafka_listener_dead_letters ORDER BY id"
    )


def publisher_snapshot(db: TestDatabase) -> list[tuple[Any, ...]]:
    return rows(
        db, "SELECT id, status, attempts, history::text, updated_at FROM kafka_publisher_dead_letters ORDER BY id"
    )


CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)
