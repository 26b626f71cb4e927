"""`dead-letters replay` and `restore listener` on the real PostgreSQL: they run under the records'
consumer group, check everything before a record changes, and their exit code says whether every
record was restored."""

from __future__ import annotations

import json
import uuid

import psycopg
from sqlalchemy import Engine

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app
from tests.integration.cli_operator_helpers import (
    APP,
    assert_one_error_line,
    db_args,
    insert_listener_dead_letter,
    run_cli,
    snapshot,
)
from tests.integration.consumer_helpers import scalar
from tests.integration.dead_letter_rows import insert_publisher_dead_letter
from tests.integration.kafka_helpers import consume_all


def engine_of(db: TestDatabase) -> Engine:
    return sync_engine(db.server.url(), schema=db.schema)


def dead_letters(db: TestDatabase, group: str, keys: dict[str, int], *, first_status: str = "pending") -> list[Event]:
    """Per key: a head dead letter (``first_status``) and parked ones behind it, as the consumer leaves them."""
    events: list[Event] = []
    engine = engine_of(db)
    offset = scalar(db.conninfo, 'SELECT coalesce(max("offset"), 0) FROM kafka_listener_dead_letters') + 1
    with engine.begin() as conn:
        for key, count in keys.items():
            for seq in range(count):
                event = Event(type="test.applied", key=key, payload={"seq": seq})
                status = first_status if seq == 0 else "parked"
                insert_listener_dead_letter(conn, group, event, offset=offset, status=status)
                offset += 1
                events.append(event)
    engine.dispose()
    return events


def statuses(db: TestDatabase, group: str) -> list[tuple[str, str]]:
    sql = "SELECT key, status FROM kafka_listener_dead_letters WHERE consumer_group = %s ORDER BY id"
    return [(str(k), str(s)) for k, s in _rows(db, sql, (group,))]


def ids_of(db: TestDatabase, group: str) -> set[int]:
    sql = "SELECT id FROM kafka_listener_dead_letters WHERE consumer_group = %s"
    return {int(str(r[0])) for r in _rows(db, sql, (group,))}


def _rows(db: TestDatabase, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
    with psycopg.connect(db.conninfo) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def test_replay_of_a_group_runs_its_handlers_under_that_group(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group, other = consumer_app.new_group(), consumer_app.new_group()
    events = dead_letters(db, group, {"k1": 3, "k2": 1})
    dead_letters(db, other, {"k9": 1})
    before_other = [r for r in snapshot(db) if r[0] in ids_of(db, other)]

    result = run_cli("dead-letters", "replay", "--group", group, "--app", APP, *db_args(db))

    assert result.returncode == 0, result.stderr
    assert "2 of 2 restored" in result.stdout and "2 parked record(s)" in result.stdout, result.stdout
    applied = _rows(db, "SELECT key, seq, event_id::text FROM effects ORDER BY id", ())
    assert applied == [(e.key, e.payload["seq"], str(e.event_id)) for e in events]  # handler called, key order
    inbox_groups = _rows(db, "SELECT DISTINCT consumer_group FROM kafka_inbox", ())
    assert inbox_groups == [(group,)]  # under the records' group, not the default "kafkaguard"
    assert {s for _, s in statuses(db, group)} == {"restored"}
    assert [r for r in snapshot(db) if r[0] in ids_of(db, other)] == before_other  # the other group untouched


def test_replay_without_group_uses_the_records_group(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    dead_letters(db, group, {"a": 2})
    result = run_cli("dead-letters", "replay", "--app", APP, *db_args(db))
    assert result.returncode == 0, result.stderr
    assert f"of group {group}" in result.stdout
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 2


def test_replay_whose_handler_fails_exits_1_and_records_the_error(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    dead_letters(db, group, {"good": 1, "bad": 2})
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('bad')")

    result = run_cli("dead-letters", "replay", "--group", group, "--app", APP, *db_args(db))

    line = assert_one_error_line(result, 1)
    assert "1 of 2 restored" in line and "BrokenKeyError" in line, line
    assert statuses(db, group) == [("good", "restored"), ("bad", "pending"), ("bad", "parked")]
    attempts, error = _rows(
        db, "SELECT attempts, error_class FROM kafka_listener_dead_letters WHERE key = 'bad' AND status = 'pending'", ()
    )[0]
    assert attempts == 1 and "BrokenKeyError" in str(error)


def test_replay_without_app_is_refused_before_any_change(migrated_database: TestDatabase) -> None:
    db = migrated_database
    dead_letters(db, consumer_app.new_group(), {"k": 2}, first_status="failed")
    before = snapshot(db)
    line = assert_one_error_line(run_cli("dead-letters", "replay", *db_args(db)), 2)
    assert "--app" in line
    assert snapshot(db) == before


def test_replay_across_groups_without_group_is_refused(migrated_database: TestDatabase) -> None:
    db = migrated_database
    dead_letters(db, consumer_app.new_group(), {"k": 1})
    dead_letters(db, consumer_app.new_group(), {"k": 1})
    before = snapshot(db)
    line = assert_one_error_line(run_cli("dead-letters", "replay", "--app", APP, *db_args(db)), 2)
    assert "2 consumer groups" in line and "--group" in line, line
    assert snapshot(db) == before


def test_replay_with_handlers_that_lack_a_type_is_refused(migrated_database: TestDatabase) -> None:
    db = migrated_database
    group = consumer_app.new_group()
    dead_letters(db, group, {"k": 1})
    engine = engine_of(db)
    with engine.begin() as conn:  # a parked record of the same key with a type the app does not handle
        stray = Event(type="other.type", key="k", payload={})
        insert_listener_dead_letter(conn, group, stray, offset=99, status="parked")
    engine.dispose()
    before = snapshot(db)
    line = assert_one_error_line(run_cli("dead-letters", "replay", "--group", group, "--app", APP, *db_args(db)), 2)
    assert "other.type (no handler)" in line, line
    assert snapshot(db) == before


def test_replay_of_an_unknown_group_or_a_closed_id_is_refused(migrated_database: TestDatabase) -> None:
    db = migrated_database
    group = consumer_app.new_group()
    dead_letters(db, group, {"k": 1})
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("UPDATE kafka_listener_dead_letters SET status = 'restored'")
    record = scalar(db.conninfo, "SELECT id FROM kafka_listener_dead_letters")
    before = snapshot(db)
    line = assert_one_error_line(run_cli("dead-letters", "replay", "--group", "nosuch", "--app", APP, *db_args(db)), 2)
    assert "nosuch has no listener dead letters" in line and group in line, line
    line = assert_one_error_line(run_cli("dead-letters", "replay", "--id", str(record), "--app", APP, *db_args(db)), 1)
    assert f"record {record} is restored" in line, line
    assert snapshot(db) == before


def test_reset_only_needs_no_app_and_dry_run_changes_nothing(migrated_database: TestDatabase) -> None:
    db = migrated_database
    group = consumer_app.new_group()
    dead_letters(db, group, {"k": 2}, first_status="failed")
    before = snapshot(db)
    dry = run_cli("dead-letters", "replay", "--dry-run", *db_args(db))
    assert dry.returncode == 0, dry.stderr
    assert "would reset and restore 1 listener dead letter(s) under group" in dry.stdout
    assert snapshot(db) == before
    reset = run_cli("dead-letters", "replay", "--reset-only", *db_args(db))
    assert reset.returncode == 0, reset.stderr
    assert statuses(db, group) == [("k", "pending"), ("k", "parked")]


def test_restore_listener_runs_under_the_records_group(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    dead_letters(db, group, {"k1": 2, "k2": 1})
    result = run_cli("restore", "listener", "--once", "--app", APP, *db_args(db))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"restore listener (group {group}): restored=3" in result.stdout, result.stdout
    assert _rows(db, "SELECT DISTINCT consumer_group FROM kafka_inbox", ()) == [(group,)]


def test_restore_listener_refuses_several_groups_and_reports_failures(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    first, second = consumer_app.new_group(), consumer_app.new_group()
    dead_letters(db, first, {"k": 1})
    dead_letters(db, second, {"bad": 1})
    before = snapshot(db)
    line = assert_one_error_line(run_cli("restore", "listener", "--once", "--app", APP, *db_args(db)), 2)
    assert "--group" in line and first in line and second in line, line
    assert snapshot(db) == before

    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('bad')")
    failing = run_cli("restore", "listener", "--once", "--group", second, "--app", APP, *db_args(db))
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "retried=1" in failing.stdout
    assert statuses(db, first) == [("k", "pending")]  # another group's records are not touched


def test_show_prints_raw_bytes_and_exact_headers(migrated_database: TestDatabase) -> None:
    db = migrated_database
    engine = engine_of(db)
    event = Event(type="test.applied", key="k-é", payload={"seq": 0})
    with engine.begin() as conn:
        record = insert_listener_dead_letter(
            conn, consumer_app.new_group(), event, offset=1, extra_headers=[("bin", b"\xff\x00"), ("none", None)]
        )
    engine.dispose()
    result = run_cli("dead-letters", "show", str(record), *db_args(db))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["raw_key"] == "k-é".encode().hex() and shown["raw_key_text"] == "k-é"
    # A JSON value is shown decoded, not as hex (`hex only for non-JSON/binary`, issue 14).
    assert shown["raw_value_json"] == json.loads(event.payload_bytes()) and "raw_value" not in shown
    headers = {h["name"]: h for h in shown["raw_headers_decoded"]}
    assert headers["bin"] == {"name": "bin", "value": None, "value_hex": "ff00"}
    assert headers["none"]["value_hex"] is None
    assert headers["type"]["value"] == "test.applied"


def test_last_resort_records_are_listed_shown_and_counted(migrated_database: TestDatabase) -> None:
    db = migrated_database
    group = f"g-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        record = conn.execute(
            'INSERT INTO kafkaguard_last_resort (store, consumer_group, topic, partition, "offset", raw_key, '
            "raw_value, error) VALUES ('listener', %s, 't', 0, 7, %s, %s, 'StringDataRightTruncation: too long') "
            "RETURNING id",
            (group, b"\xff\x1b[31mkey", b"value \x00 bytes"),
        ).fetchone()[0]  # type: ignore[index]
    listed = run_cli("dead-letters", "list", "--store", "last-resort", "--json", "--group", group, *db_args(db))
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [record]
    table = run_cli("dead-letters", "list", "--store", "last-resort", *db_args(db))
    assert table.returncode == 0 and "\x1b" not in table.stdout  # an escape in a key never reaches the terminal
    shown = json.loads(run_cli("dead-letters", "show", str(record), "--store", "last-resort", *db_args(db)).stdout)
    assert shown["raw_key"] == b"\xff\x1b[31mkey".hex() and shown["raw_key_text"] is None
    assert shown["raw_value_text"] == "value \x00 bytes"
    stats = run_cli("dead-letters", "stats", "--store", "last-resort", "--json", *db_args(db))
    assert json.loads(stats.stdout)[0] | {"oldest": None} == {
        "status": "pending", "store": "listener", "error_class": "StringDataRightTruncation", "count": 1,
        "oldest": None,
    }  # fmt: skip


def test_restore_listener_leaves_keys_it_cannot_handle_alone(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    dead_letters(db, group, {"ok": 1})
    engine = engine_of(db)
    with engine.begin() as conn:
        insert_listener_dead_letter(conn, group, Event(type="other.type", key="odd", payload={}), offset=500)
    engine.dispose()
    odd_before = [r for r in snapshot(db) if r[0] == max(ids_of(db, group))]
    result = run_cli("restore", "listener", "--once", "--group", group, "--app", APP, *db_args(db))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "restored=1" in result.stdout and "unhandled_keys=1" in result.stdout, result.stdout
    assert "other.type (no handler)" in result.stdout
    assert [r for r in snapshot(db) if r[0] == max(ids_of(db, group))] == odd_before


def test_publisher_replay_republishes_and_reports_what_failed(
    migrated_database: TestDatabase, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    db = migrated_database
    topic = topics("replay")
    engine = engine_of(db)
    good = Event(type="order.created", key="k1", payload={"n": 1})
    with engine.begin() as conn:
        first = insert_publisher_dead_letter(conn, good, topic)
        second = insert_publisher_dead_letter(conn, Event(type="order.created", key="k2", payload={}), "bad topic!")
    engine.dispose()
    env = {"KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKAGUARD_RELAY__DELIVERY_TIMEOUT": "10"}
    result = run_cli("dead-letters", "replay", "--store", "publisher", *db_args(db), env=env)
    line = assert_one_error_line(result, 1)
    assert "1 of 2 restored" in line and f"#{second} pending" in line, line
    got = consume_all(kafka_bootstrap, topic, 1, timeout=60)
    assert [dict(m.headers())["event_id"].decode() for m in got] == [str(good.event_id)]
    status = _rows(db, "SELECT id, status FROM kafka_publisher_dead_letters ORDER BY id", ())
    assert status == [(first, "restored"), (second, "pending")]
