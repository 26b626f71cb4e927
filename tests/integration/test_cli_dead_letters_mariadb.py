"""The operator commands on MariaDB (issue 18 item 1: every kafkaguard table first-class there):
`dead-letters list | show | stats | replay | discard` over both dead-letter stores and `restore
listener`, as subprocesses against the real server, with the records written by kafkaguard's own
MariaDB stores."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from kafkaguard.consumer import Record
from kafkaguard.consumer.dead_letters import dead_letter_row
from kafkaguard.db.columns import DeadLetterStatus, PublishSource
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaUnavailableError
from kafkaguard.stores.by_database import consumer_store_for, publisher_dead_letters_for
from kafkaguard.testing.fixtures import TestMariaDatabase
from tests.integration import mariadb_operator_app as app
from tests.integration.cli_operator_helpers import run_cli

APP = "tests.integration.mariadb_operator_app:registry"


@pytest.fixture
def db(migrated_mariadb_database: TestMariaDatabase) -> TestMariaDatabase:
    return migrated_mariadb_database


@pytest.fixture
def engine(db: TestMariaDatabase) -> Iterator[Engine]:
    engine = sync_engine(db.url, schema=db.schema)
    app.create_tables(engine)
    yield engine
    engine.dispose()


def _args(db: TestMariaDatabase) -> list[str]:
    return ["--url", db.url, "--schema", db.schema]


def _listener_dead_letters(engine: Engine, group: str, keys: dict[str, int], *, first: int = 0) -> list[Event]:
    """Per key a failed head and parked records behind it, written by the MariaDB consumer store."""
    events: list[Event] = []
    offset = first
    store = consumer_store_for(engine)
    with store.transaction() as tx:
        for key, count in keys.items():
            for seq in range(count):
                event = Event(type="test.applied", key=key, payload={"seq": seq, "text": "héllo"})
                record = Record("t-cli", 0, offset, key.encode(), event.payload_bytes(), event.kafka_headers())
                head = seq == 0
                tx.insert_dead_letter(
                    dead_letter_row(
                        group, record, reason="handler_error" if head else "parked", event=event,
                        exc=app.BrokenKeyError("broken") if head else None, attempts=1,
                        status=DeadLetterStatus.FAILED if head else DeadLetterStatus.PARKED,
                    )
                )  # fmt: skip
                events.append(event)
                offset += 1
    return events


def _rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_show_stats_and_replay_run_the_handlers_under_the_records_group(
    db: TestMariaDatabase, engine: Engine
) -> None:
    group, other = f"g-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    events = _listener_dead_letters(engine, group, {"k1": 3, "k2": 1})
    _listener_dead_letters(engine, other, {"k9": 1}, first=100)

    listed = _json(run_cli("dead-letters", "list", "--store", "listener", "--group", group, "--json", *_args(db)))
    assert [(r["key"], r["status"], r["offset"]) for r in listed] == [
        ("k1", "failed", 0), ("k1", "parked", 1), ("k1", "parked", 2), ("k2", "failed", 3),
    ]  # fmt: skip
    shown = _json(run_cli("dead-letters", "show", str(listed[0]["id"]), "--store", "listener", *_args(db)))
    assert shown["raw_value_json"] == events[0].payload and shown["consumer_group"] == group
    assert shown["raw_key_text"] == "k1" and shown["history"]  # raw bytes readable, the history included
    counts = _json(run_cli("dead-letters", "stats", "--store", "listener", "--group", group, "--json", *_args(db)))
    assert {(r["status"], r["count"]) for r in counts} == {("failed", 2), ("parked", 2)}
    by_id = run_cli("dead-letters", "replay", "--dry-run", "--id", str(listed[3]["id"]), *_args(db))
    assert by_id.returncode == 0, by_id.stderr  # an id filter: an expanding IN on MariaDB
    assert "would reset and restore 1 listener dead letter(s)" in by_id.stdout, by_id.stdout

    result = run_cli("dead-letters", "replay", "--group", group, "--app", APP, *_args(db))
    assert result.returncode == 0, result.stderr
    assert "2 of 2 restored" in result.stdout and "2 parked record(s)" in result.stdout, result.stdout
    applied = _rows(engine, "SELECT k, seq, event_id FROM effects ORDER BY id")
    assert applied == [(e.key, e.payload["seq"], str(e.event_id)) for e in events]  # once each, key order
    assert _rows(engine, "SELECT DISTINCT consumer_group FROM kafka_inbox") == [(group,)]
    statuses = _rows(
        engine, "SELECT DISTINCT status FROM kafka_listener_dead_letters WHERE consumer_group = :g", g=group
    )
    assert statuses == [("restored",)]
    untouched = _rows(engine, "SELECT status FROM kafka_listener_dead_letters WHERE consumer_group = :g", g=other)
    assert untouched == [("failed",)]


def test_reset_only_then_restore_listener_and_a_failing_handler_is_recorded(
    db: TestMariaDatabase, engine: Engine
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    _listener_dead_letters(engine, group, {"ok": 1, "bad": 2})
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO broken_keys (k) VALUES ('bad')"))

    reset = run_cli("dead-letters", "replay", "--group", group, "--reset-only", *_args(db))
    assert reset.returncode == 0, reset.stderr
    assert "2 listener dead letter(s) reset to pending" in reset.stdout, reset.stdout
    rows = _rows(engine, "SELECT `key`, status, attempts, history FROM kafka_listener_dead_letters ORDER BY id")
    assert [(k, s, a) for k, s, a, _ in rows] == [("ok", "pending", 0), ("bad", "pending", 0), ("bad", "parked", 1)]
    assert json.loads(rows[0][3])[-1]["what"] == "replay"  # the operator's change appended to the history

    restored = run_cli("restore", "listener", "--once", "--app", APP, *_args(db))
    assert restored.returncode == 1  # one key's handler still fails: --once says so
    after = _rows(engine, "SELECT `key`, status FROM kafka_listener_dead_letters ORDER BY id")
    assert after[0] == ("ok", "restored") and after[2] == ("bad", "parked")
    assert after[1][0] == "bad" and after[1][1] in ("pending", "failed")  # retried later or given up, by policy
    assert _rows(engine, "SELECT k FROM effects") == [("ok",)]
    error = _rows(
        engine, "SELECT error_class FROM kafka_listener_dead_letters WHERE `key` = 'bad' AND status <> 'parked'"
    )
    assert error == [("tests.integration.mariadb_operator_app.BrokenKeyError",)]


def test_discard_on_both_stores_keeps_the_records_and_unblocks(db: TestMariaDatabase, engine: Engine) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    _listener_dead_letters(engine, group, {"k": 2})
    event = Event(type="order.created", key="o-1", payload={"n": 1})
    with engine.begin() as conn:
        publisher_dead_letters_for(engine).add(
            conn, event, topic="outbox.event.order", source=PublishSource.DIRECT, error=KafkaUnavailableError("down")
        )
    [record] = _json(run_cli("dead-letters", "list", "--store", "publisher", "--json", *_args(db)))
    assert (record["key"], record["status"], record["source"]) == ("o-1", "pending", "direct")

    for store, extra in (("listener", ["--group", group]), ("publisher", [])):
        done = run_cli("dead-letters", "discard", "--store", store, *extra, "--yes", *_args(db))
        assert done.returncode == 0, done.stderr
    listener = _rows(engine, "SELECT status, history FROM kafka_listener_dead_letters ORDER BY id")
    assert [s for s, _ in listener] == ["discarded", "discarded"]
    assert json.loads(listener[0][1])[-1]["what"] == "discard"
    assert _rows(engine, "SELECT status FROM kafka_publisher_dead_letters") == [("discarded",)]
    again = run_cli("dead-letters", "discard", "--store", "publisher", "--yes", *_args(db))
    assert again.returncode == 0 and _rows(engine, "SELECT count(*) FROM kafka_publisher_dead_letters") == [(1,)]


def test_the_console_on_mariadb_is_refused_in_one_line_naming_the_commands(db: TestMariaDatabase) -> None:
    refused = run_cli("console", "--port", "1", *_args(db), timeout=60)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "PostgreSQL only so far" in refused.stderr and "kafkaguard dead-letters" in refused.stderr
    assert db.server.password() not in refused.stderr
