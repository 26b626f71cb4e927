"""Async handlers' dead letters are restored and replayed like sync ones, on the real Kafka and PostgreSQL:
by `kafkaguard restore listener`, by `dead-letters replay`, and by the API (``restore_key``,
``retry_dead_letter`` and their ``_async`` forms)."""

from __future__ import annotations

import asyncio
import threading
import uuid

import psycopg
import pytest

from kafkaguard.consumer import restore_key, restore_key_async, retry_dead_letter, retry_dead_letter_async
from kafkaguard.consumer.runner import build_worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import async_engine, sync_engine
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import async_app, consumer_app
from tests.integration.cli_operator_helpers import insert_listener_dead_letter, run_cli
from tests.integration.consumer_helpers import rows, wait_until

ASYNC_APP = "tests.integration.async_app:registry"


def _effects(db: TestDatabase, key: str) -> list[int]:
    return [int(r[0]) for r in rows(db.conninfo, "SELECT seq FROM effects WHERE key = %(k)s ORDER BY id", {"k": key})]


def _statuses(db: TestDatabase, group: str, key: str) -> list[str]:
    sql = "SELECT status FROM kafka_listener_dead_letters WHERE consumer_group = %(g)s AND key = %(k)s ORDER BY id"
    return [str(r[0]) for r in rows(db.conninfo, sql, {"g": group, "k": key})]


def _break(db: TestDatabase, key: str, broken: bool = True) -> None:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        if broken:
            conn.execute("INSERT INTO broken_keys VALUES (%s)", (key,))
        else:
            conn.execute("DELETE FROM broken_keys WHERE key = %s", (key,))


def _dead_letters(db: TestDatabase, group: str, key: str, types: list[str]) -> list[int]:
    """A head dead letter of ``key`` and parked ones behind it, one per type, as the consumer leaves them."""
    engine = sync_engine(db.server.url(), schema=db.schema)
    ids = []
    offset = uuid.uuid4().int % 1_000_000
    with engine.begin() as conn:
        for seq, event_type in enumerate(types):
            event = Event(type=event_type, key=key, payload={"seq": seq})
            status = "pending" if seq == 0 else "parked"
            ids.append(insert_listener_dead_letter(conn, group, event, offset=offset + seq, status=status))
    engine.dispose()
    return ids


def test_async_handler_dead_letter_from_the_consumer_restored_by_the_cli(
    migrated_database: TestDatabase, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    topic, group = topics("async"), consumer_app.new_group()
    _break(db, "k1")
    settings = KafkaguardSettings(
        bootstrap_servers=kafka_bootstrap,
        database_url=db.server.url(driver="postgresql+asyncpg"),
        db_schema=db.schema,
        consumer=ConsumerSettings(
            group_id=group, topics=(topic,), retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0.05))
        ),
        consumer_client={"session.timeout.ms": 10000},
    )
    worker = build_worker(settings, async_app.registry)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        events = [Event(type="test.applied", key=k, payload={"seq": s}) for k in ("k1", "k2") for s in range(3)]
        consumer_app.produce(kafka_bootstrap, topic, events)
        wait_until(
            lambda: _effects(db, "k2") == [0, 1, 2] and _statuses(db, group, "k1") == ["pending", "parked", "parked"],
            60,
            "k2 applied and k1 dead-lettered by the async handler, its later events parked",
        )
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    _break(db, "k1", broken=False)

    url = db.server.url(driver="postgresql+asyncpg")
    result = run_cli("restore", "listener", "--once", "--app", ASYNC_APP, "--group", group, "--url", url,
                     "--schema", db.schema)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "restored=3" in result.stdout and "unhandled_keys=0" in result.stdout, result.stdout
    assert _effects(db, "k1") == [0, 1, 2]  # once each, in order
    assert _statuses(db, group, "k1") == ["restored"] * 3
    inbox = rows(db.conninfo, "SELECT count(*) FROM kafka_inbox WHERE consumer_group = %(g)s", {"g": group})
    assert inbox == [(6,)]


def test_replay_runs_async_handlers(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    _dead_letters(db, group, "k1", ["test.applied", "test.other", "test.applied"])  # async, sync, async

    result = run_cli("dead-letters", "replay", "--group", group, "--app", ASYNC_APP, "--url", db.server.url(),
                     "--schema", db.schema)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 restored" in result.stdout and "2 parked record(s)" in result.stdout, result.stdout
    assert _effects(db, "k1") == [0, 1, 2]
    assert _statuses(db, group, "k1") == ["restored"] * 3


def test_api_restores_async_handlers_sync_and_async(migrated_database: TestDatabase) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        # restore_key with only a sync engine: an async twin on the same schema, for the call
        _dead_letters(db, group, "a", ["test.applied", "test.other"])
        result = restore_key(engine, async_app.registry, group, "a")
        assert (len(result.restored), result.failed_id) == (2, None)
        assert _effects(db, "a") == [0, 1]

        # a failure stops at the head, counted and kept pending; retry_dead_letter then restores it
        ids = _dead_letters(db, group, "b", ["test.applied", "test.applied"])
        _break(db, "b")
        failed = restore_key(engine, async_app.registry, group, "b")
        assert failed.failed_id == ids[0] and failed.restored == []
        assert _statuses(db, group, "b") == ["pending", "parked"]
        attempts = rows(db.conninfo, "SELECT attempts, error_class FROM kafka_listener_dead_letters WHERE id = %(i)s",
                        {"i": ids[0]})  # fmt: skip
        assert attempts == [(1, "tests.integration.consumer_app.BrokenKeyError")]
        _break(db, "b", broken=False)
        assert retry_dead_letter(engine, async_app.registry, ids[1]).restored == ids
        assert _effects(db, "b") == [0, 1]

        # the async forms, inside an event loop, on an asyncpg engine
        _dead_letters(db, group, "c", ["test.other", "test.applied"])
        ids_d = _dead_letters(db, group, "d", ["test.applied"])
        aengine = async_engine(db.server.url(driver="postgresql+asyncpg"), schema=db.schema)

        async def restore_async() -> tuple[list[int], list[int]]:
            try:
                c = await restore_key_async(aengine, async_app.registry, group, "c")
                d = await retry_dead_letter_async(aengine, async_app.registry, ids_d[0])
                return c.restored, d.restored
            finally:
                await aengine.dispose()

        restored_c, restored_d = asyncio.run(restore_async())
        assert len(restored_c) == 2 and restored_d == ids_d
        assert _effects(db, "c") == [0, 1] and _effects(db, "d") == [0]

        # restoring again finds nothing open: nothing applied twice
        assert restore_key(engine, async_app.registry, group, "a").restored == []
        assert _effects(db, "a") == [0, 1]
    finally:
        engine.dispose()


def test_sync_restore_inside_a_running_loop_points_to_the_async_form(migrated_database: TestDatabase) -> None:
    db = migrated_database
    engine = sync_engine(db.server.url(), schema=db.schema)

    async def inside_loop() -> None:
        restore_key(engine, async_app.registry, "g", "k")

    try:
        with pytest.raises(Exception, match="restore_key_async"):
            asyncio.run(inside_loop())
    finally:
        engine.dispose()
