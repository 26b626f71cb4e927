"""`make demo` until the reference services exist: one real round trip through the local stack.

Starts (or reuses) the dev stack, writes an event row to PostgreSQL, produces it to the local
broker with the idempotent ``acks=all`` producer, consumes it back with a plain consumer, and checks
that what came back is what was written. Exits non-zero when any step fails.
"""

from __future__ import annotations

import json
import sys
import time
import uuid

import psycopg
from confluent_kafka import Consumer
from rich.console import Console

from kafkaguard.devstack.stack import DevStack, default_run_dir
from kafkaguard.transports.kafka_admin import ensure_topics
from kafkaguard.transports.kafka_producer import SyncProducer

console = Console()


def main() -> int:
    console.print("[bold]kafkaguard demo[/] — for now a real round trip: PostgreSQL → Kafka → back")
    with console.status("starting Kafka and PostgreSQL (first run fetches Kafka's jars)..."):
        stack = DevStack.create(default_run_dir())
        stack.up()
    bootstrap, pg = stack.kafka.bootstrap, stack.postgres
    console.print(f"stack up: Kafka {bootstrap}, PostgreSQL 127.0.0.1:{pg.port}")

    event_id = str(uuid.uuid4())
    payload = {"post_id": 1, "title": "hello kafkaguard"}
    with psycopg.connect(pg.conninfo()) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS demo_events (event_id uuid PRIMARY KEY, key text, payload jsonb, "
            "created_at timestamptz DEFAULT now())"
        )
        conn.execute(
            "INSERT INTO demo_events (event_id, key, payload) VALUES (%s, %s, %s)",
            (event_id, "post-1", json.dumps(payload)),
        )
    console.print(f"1. wrote event {event_id} to PostgreSQL table demo_events")

    topic = "demo.roundtrip"
    ensure_topics(bootstrap, [topic], partitions=1)
    with psycopg.connect(pg.conninfo()) as conn:
        row = conn.execute("SELECT key, payload::text FROM demo_events WHERE event_id = %s", (event_id,)).fetchone()
    assert row is not None
    delivered = SyncProducer(bootstrap, timeout=30).send(
        topic, row[1].encode(), key=row[0].encode(), headers=[("event_id", event_id.encode())]
    )
    where = f"{delivered.topic}[{delivered.partition}]@{delivered.offset}"
    console.print(f"2. produced it (acks=all, idempotent) to {where}")

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"demo-{event_id}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    found = None
    while found is None and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        if dict(msg.headers() or []).get("event_id") == event_id.encode():
            found = msg
    consumer.close()
    if found is None:
        console.print("[red]3. the event did not come back from Kafka within 60 s[/]")
        return 1
    back = json.loads(found.value() or b"null")
    ok = back == payload and found.key() == b"post-1"
    verdict = "[green]match[/]" if ok else "[red]MISMATCH[/]"
    console.print(f"3. consumed it back: key={found.key()!r} value={back} → {verdict}")
    console.print("\nnext: `kafkaguard dev status`, `kafkaguard dev down`; the reference services come later.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
