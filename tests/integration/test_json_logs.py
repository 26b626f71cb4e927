"""``kafkaguard consume --log-format json`` against the real broker and PostgreSQL: every log line
of the run is a JSON document, and a line about one event carries that event's trace id (read from
its ``traceparent``; no tracing SDK in the process)."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import psycopg

from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import scalar, spawn_cli_consumer, wait_until


def test_every_line_is_json_and_event_lines_carry_their_trace_id(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase, tmp_path: Path
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys (key) VALUES ('k1')")  # k1's events: dead letter, then parked
    topic = topics("jsonlogs", partitions=2)
    events = [
        dataclasses.replace(e, headers={"traceparent": f"00-{i + 1:032x}-{i + 1:016x}-01"})
        for i, e in enumerate(app.make_events(40, keys=4))
    ]
    trace_of = {str(e.event_id): f"{i + 1:032x}" for i, e in enumerate(events)}
    app.produce(kafka_bootstrap, topic, events)
    log = tmp_path / "consumer.log"

    def done() -> int:
        counts = "SELECT (SELECT count(*) FROM effects) + (SELECT count(*) FROM kafka_listener_dead_letters)"
        return int(scalar(db.conninfo, counts))

    proc = spawn_cli_consumer(
        kafka_bootstrap, db.server.url(), db.schema, app.new_group(), topic, log,
        args=["--log-level", "INFO", "--log-format", "json"],
    )  # fmt: skip
    try:
        wait_until(lambda: done() >= len(events) or proc.poll() is not None, 90, "every event applied or dead-lettered")
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert done() == len(events)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    docs = []
    for line in lines:
        doc = json.loads(line)  # every line: a JSON document
        assert {"time", "level", "logger", "message"} <= doc.keys(), doc
        docs.append(doc)
    about_events = [d for d in docs if "event_id" in d]
    failures = [d for d in about_events if d["message"].startswith(("handler failed", "dead-lettered"))]
    assert len(failures) >= 2, [d["message"] for d in docs]  # k1's first event: a retry, then its dead letter
    for doc in about_events:
        assert doc["trace_id"] == trace_of[doc["event_id"]], doc
        assert doc["topic"] == topic and doc["key"] in {"k0", "k1", "k2", "k3"}, doc
    assert any(d["message"].startswith("consumer stopped") for d in docs)
