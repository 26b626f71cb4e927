"""Migrations create the tables; a Debezium-style five-column insert gets every default."""

import json
import os
import subprocess
import sys
import uuid

import psycopg

from kafkaguard.db import migrate
from kafkaguard.testing.fixtures import TestDatabase


def test_upgrade_is_idempotent_and_creates_every_table(migrated_database: TestDatabase) -> None:
    migrate.upgrade(migrated_database.server.url(), schema=migrated_database.schema)  # again: no-op
    with psycopg.connect(migrated_database.conninfo) as conn:
        names = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (migrated_database.schema,),
            )
        }
    assert {
        "outbox",
        "kafka_publisher_dead_letters",
        "kafka_listener_dead_letters",
        "kafka_inbox",
        "alembic_version",
    } <= names


def test_five_column_insert_gets_defaults_and_wakes_listeners(migrated_database: TestDatabase) -> None:
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as listener:
        listener.execute("LISTEN kafkaguard_outbox")
        with psycopg.connect(migrated_database.conninfo) as conn:
            conn.execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s, %s)",
                (uuid.uuid4(), "order", "order-1", "order.created", json.dumps({"total": 3})),
            )
        notes = list(listener.notifies(timeout=5, stop_after=1))
    assert [n.payload for n in notes] == [migrated_database.schema]
    with psycopg.connect(migrated_database.conninfo) as conn:
        row = conn.execute("SELECT seq, shard, headers, schema_version, published_at FROM outbox").fetchone()
    assert row is not None
    seq, shard, headers, version, published_at = row
    assert seq >= 1 and 0 <= shard < 64 and headers == {} and version == 1 and published_at is None


def test_cli_db_upgrade(database: TestDatabase) -> None:
    env = {**os.environ, "KAFKAGUARD_DATABASE_URL": database.server.url()}
    out = subprocess.run(
        [sys.executable, "-m", "kafkaguard", "db", "upgrade", "--schema", database.schema],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    with psycopg.connect(database.conninfo) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005_outbox_traceparent",)


def _has_begin_event(db: TestDatabase) -> bool:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.proname = 'kafkaguard_begin_event' AND n.nspname = %s",
            (db.schema,),
        ).fetchone()
    return row == (1,)


def test_begin_event_function_lives_in_the_schema_and_downgrade_removes_it(database: TestDatabase) -> None:
    url = database.server.url()
    migrate.upgrade(url, schema=database.schema)
    assert _has_begin_event(database)
    migrate.downgrade(url, schema=database.schema, revision="0002_total_inputs")
    assert not _has_begin_event(database)
    migrate.upgrade(url, schema=database.schema)
    assert _has_begin_event(database)
