"""Every PostgreSQL URL form works in every command and API, with the schema honoured (real Kafka and
PostgreSQL): ``postgresql://``, ``postgresql+psycopg://``, ``postgresql+psycopg_async://`` and
``postgresql+asyncpg://`` through `db upgrade`, `relay`, `consume` (an async handler: the async
engine is the URL's driver), `/metrics` of both, ``kafkaguard.create_async_engine`` + ``Publisher``,
`dead-letters list` / `replay`, `restore listener` / `restore publisher`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import kafkaguard
from kafkaguard.devstack.process import free_ports
from kafkaguard.envelope import Event
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics
from tests.integration import consumer_app
from tests.integration.cli_operator_helpers import run_cli
from tests.integration.consumer_helpers import REPO, rows, scalar, wait_until

FORMS = ["postgresql", "postgresql+psycopg", "postgresql+psycopg_async", "postgresql+asyncpg"]
ASYNC_APP = "tests.integration.async_app:registry"


@pytest.fixture
def aggregate(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh aggregate type whose outbox topic exists (the consumer subscribes before the relay runs)."""
    agg = f"u{uuid.uuid4().hex[:8]}"
    topic = f"outbox.event.{agg}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1, replication=1)
    yield agg
    delete_topics(kafka_bootstrap, [topic])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "kafkaguard", *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _db_up(port: int) -> bool:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return False
    return "kafkaguard_db_up 1.0" in body


@pytest.mark.parametrize("driver", FORMS)
def test_every_command_on_each_url_form(
    driver: str, database: TestDatabase, kafka_bootstrap: str, aggregate: str, tmp_path: Path
) -> None:
    db, url = database, database.server.url(driver=driver)
    args = ["--url", url, "--schema", db.schema]

    upgraded = run_cli("db", "upgrade", *args)
    assert upgraded.returncode == 0, upgraded.stderr
    assert scalar(db.conninfo, f"SELECT to_regclass('{db.schema}.outbox') IS NOT NULL") is True
    consumer_app.create_tables(f"{db.conninfo} options=-csearch_path={db.schema}")
    with psycopg.connect(f"{db.conninfo} options=-csearch_path={db.schema}", autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('bad')")

    # the Publisher on the caller's session of kafkaguard's async engine (no search_path in the URL)
    settings = KafkaguardSettings(database_url=url, db_schema=db.schema, bootstrap_servers=kafka_bootstrap)
    events = [Event(type="test.applied", key=k, payload={"seq": 0}, aggregate_type=aggregate) for k in ("ok", "bad")]

    async def publish() -> None:
        engine = kafkaguard.create_async_engine(settings)
        publisher = kafkaguard.Publisher(settings)
        try:
            async with AsyncSession(engine) as session, session.begin():
                for event in events:
                    await publisher.publish_async(session, event)
        finally:
            publisher.close()
            await engine.dispose()

    asyncio.run(publish())
    assert scalar(db.conninfo, f"SELECT count(*) FROM {db.schema}.outbox") == 2

    relay_port, consumer_port = free_ports(2)
    group = consumer_app.new_group()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "KAFKAGUARD_DATABASE_URL": "",
        "KAFKAGUARD_CONSUMER__RETRY": json.dumps({"max_attempts": 1}),
        "KAFKAGUARD_CONSUMER_CLIENT": json.dumps({"session.timeout.ms": 6000}),
    }
    procs = [
        _spawn(["relay", *args, "--bootstrap-servers", kafka_bootstrap, "--poll-interval", "0.2",
                "--metrics-port", str(relay_port)], env, tmp_path / "relay.log"),
        _spawn(["consume", ASYNC_APP, *args, "--bootstrap-servers", kafka_bootstrap, "--group", group,
                "--topic", f"outbox.event.{aggregate}", "--metrics-port", str(consumer_port)],
               env, tmp_path / "consume.log"),
    ]  # fmt: skip
    try:
        wait_until(
            lambda: (
                scalar(db.conninfo, f"SELECT count(*) FROM {db.schema}.effects") == 1
                and scalar(db.conninfo, f"SELECT count(*) FROM {db.schema}.kafka_listener_dead_letters") == 1
            ),
            60,
            "the good event applied and the broken one dead-lettered",
        )
        wait_until(lambda: _db_up(relay_port) and _db_up(consumer_port), 30, "both /metrics reading the database")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    logs = "".join((tmp_path / f).read_text() for f in ("relay.log", "consume.log"))
    assert "unexpected keyword argument" not in logs and "Traceback" not in logs, logs

    listed = run_cli("dead-letters", "list", "--json", *args)
    assert listed.returncode == 0, listed.stderr
    assert [r["key"] for r in json.loads(listed.stdout)] == ["bad"]

    with psycopg.connect(f"{db.conninfo} options=-csearch_path={db.schema}", autocommit=True) as conn:
        conn.execute("DELETE FROM broken_keys")
    replayed = run_cli("dead-letters", "replay", "--group", group, "--app", ASYNC_APP, *args)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "1 of 1 restored" in replayed.stdout
    assert rows(db.conninfo, f"SELECT key FROM {db.schema}.effects ORDER BY id") == [("ok",), ("bad",)]

    listener = run_cli("restore", "listener", "--once", "--app", ASYNC_APP, "--group", group, *args)
    assert listener.returncode == 0 and "restored=0" in listener.stdout, listener.stdout + listener.stderr
    publisher = run_cli("restore", "publisher", "--once", *args)
    assert publisher.returncode == 0 and "restored=0" in publisher.stdout, publisher.stdout + publisher.stderr
