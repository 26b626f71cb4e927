"""Issue 14's acceptance: the two-service signup app, built from the public API only, exactly once.

Against the real Kafka and PostgreSQL, each service in its own schema (``kafkaguard db upgrade``):
the signup service (``examples.signups.app``, driven over HTTP through httpx's ASGI transport)
commits ``users`` rows with their ``user.signed_up`` outbox rows; ``kafkaguard relay`` and
``kafkaguard consume --group G`` run as real processes with the example's TOML files (the
environment overriding schema, group and topics for this test). Signups from two blocked domains
are dead-lettered by the async typed handler. One domain is unblocked and ``kafkaguard restore
listener --once`` restores its signups (and exits 1: the other domain's still fail); then the
other is unblocked and ``kafkaguard dead-letters replay --group G`` replays the rest. In the end
every user has exactly one ``welcome_emails`` row, the inbox one row per event, no dead letter is open.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from examples.signups.app import create_app
from examples.signups.tables import create_tables

from kafkaguard import KafkaguardSettings
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.settings_sources import NON_SETTING_VARIABLES
from kafkaguard.testing import poll
from kafkaguard.testing.fixtures import TopicFactory

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "signups"
APP = "examples.signups.handlers:registry"
SIGNUPS = 200
RESTORED_DOMAIN = "mailinator.example"  # unblocked, then restored by the restore job
REPLAYED_DOMAIN = "tempinbox.example"  # unblocked later, then replayed by an operator
OPEN = ("pending", "parked", "failed")
COMMAND_TIMEOUT_S = 60


def email_of(i: int) -> str:
    """Every 10th signup from each blocked domain: 20 + 20 of 200."""
    domain = {3: RESTORED_DOMAIN, 7: REPLAYED_DOMAIN}.get(i % 10, "example.org")
    return f"user{i}@{domain}"


@dataclass(frozen=True)
class Services:
    """Where the two services live for this test, and the environment of each one's processes."""

    conninfo: str
    signup_schema: str
    welcome_schema: str
    group: str
    signup_env: dict[str, str]
    welcome_env: dict[str, str]

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of ``query`` (schema-qualified names: the test reads both services' tables)."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return list(cursor.fetchall()) if cursor.description else []

    def count(self, query: str, params: tuple[Any, ...] = ()) -> int:
        return int(self.sql(query, params)[0][0])

    def dead_letters(self, status: tuple[str, ...] = OPEN) -> int:
        query = f"SELECT count(*) FROM {self.welcome_schema}.kafka_listener_dead_letters WHERE status = ANY(%s)"
        return self.count(query, (list(status),))

    def welcome_emails(self) -> int:
        return self.count(f"SELECT count(*) FROM {self.welcome_schema}.welcome_emails")

    def kafkaguard(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m kafkaguard ARGS`` to completion (bounded)."""
        return subprocess.run(
            [sys.executable, "-m", "kafkaguard", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip


def _environment(**settings: str) -> dict[str, str]:
    """This process's environment without its kafkaguard settings, this tree's code first, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKAGUARD_") or k in NON_SETTING_VARIABLES}
    env.pop("KAFKAGUARD_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])  # this tree's code, not an installed one
    return {**env, **settings}


@pytest.fixture
def services(postgres: PostgresServer, kafka_bootstrap: str, topics: TopicFactory) -> Iterator[Services]:
    """Both schemas upgraded by ``kafkaguard db upgrade`` and given their tables; dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    signup_schema, welcome_schema = f"signup_{tag}", f"welcome_{tag}"
    topic = topics("user")  # what the signup service's pattern below names for aggregate "user"
    boot = {"KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap}
    signup_env = _environment(
        **boot,
        KAFKAGUARD_DATABASE_URL=postgres.url(),  # psycopg 3 (its async form in the FastAPI app)
        KAFKAGUARD_CONFIG=str(EXAMPLE / "signup.toml"),
        KAFKAGUARD_DB_SCHEMA=signup_schema,
        KAFKAGUARD_TOPICS__PATTERN=f"{topics.prefix}.{{aggregate_type}}",
    )
    welcome_env = _environment(
        **boot,
        KAFKAGUARD_DATABASE_URL=postgres.url(driver="postgresql+asyncpg"),  # asyncpg for the async handler
        KAFKAGUARD_CONFIG=str(EXAMPLE / "welcome.toml"),
        KAFKAGUARD_DB_SCHEMA=welcome_schema,
        KAFKAGUARD_CONSUMER__TOPICS=json.dumps([topic]),
    )
    s = Services(postgres.conninfo(), signup_schema, welcome_schema, f"welcome-{tag}", signup_env, welcome_env)
    try:
        for service, env, schema in (("signup", signup_env, signup_schema), ("welcome", welcome_env, welcome_schema)):
            done = s.kafkaguard(env, "db", "upgrade")
            assert done.returncode == 0 and f"schema {schema}" in done.stdout, done.stdout + done.stderr[-2000:]
            settings = KafkaguardSettings(database_url=env["KAFKAGUARD_DATABASE_URL"], db_schema=schema)
            assert create_tables(service, settings)  # the service's own tables, next to kafkaguard's
        yield s
    finally:
        for schema in (signup_schema, welcome_schema):
            s.sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Process:
    """A long-running ``python -m kafkaguard`` process with its output in a file; stopped by SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kafkaguard", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])

    def alive(self) -> None:
        assert self.proc.poll() is None, f"{self.log.name} exited {self.proc.returncode}:\n{self.tail()}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.log.name} did not stop on SIGTERM:\n{self.tail()}") from None


async def _sign_up(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[dict[str, Any]]:
    """POST the signups (8 at a time) to the signup service, configured like its processes (env + TOML)."""
    for name in [k for k in os.environ if k.startswith("KAFKAGUARD_") and k not in NON_SETTING_VARIABLES]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("KAFKAGUARD_"):
            monkeypatch.setenv(name, value)
    app = create_app()
    gate = asyncio.Semaphore(8)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://signup") as client,
    ):

        async def one(i: int) -> dict[str, Any]:
            async with gate:
                response = await client.post("/signups", json={"email": email_of(i), "name": f"User {i}"})
            assert response.status_code == 201, response.text
            body: dict[str, Any] = response.json()
            return body

        created = await asyncio.gather(*(one(i) for i in range(SIGNUPS)))
        # Refused input writes nothing: a taken address, a bad address, an unknown field.
        taken = await client.post("/signups", json={"email": email_of(0), "name": "again"})
        assert taken.status_code == 409, taken.text
        for bad in ({"email": "not-an-address", "name": "x"}, {"email": "a@b.example", "name": "x", "admin": True}):
            assert (await client.post("/signups", json=bad)).status_code == 422
    return list(created)


def test_signups_are_welcomed_exactly_once_through_dead_letters_restore_and_replay(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = services
    s.sql(
        f"INSERT INTO {s.welcome_schema}.blocked_domains (domain, reason) VALUES (%s, 'disposable'), (%s, 'review')",
        (RESTORED_DOMAIN, REPLAYED_DOMAIN),
    )
    relay = Process("relay", ["relay"], s.signup_env, tmp_path)
    consumer = Process("consume", ["consume", APP, "--group", s.group], s.welcome_env, tmp_path)
    try:
        created = asyncio.run(_sign_up(monkeypatch, s.signup_env))
        assert len({c["user_id"] for c in created}) == SIGNUPS

        def settled() -> bool:
            relay.alive()
            consumer.alive()
            return s.welcome_emails() == SIGNUPS - 40 and s.dead_letters() == 40

        assert poll(settled, timeout=60), (
            f"{s.welcome_emails()} welcome e-mails, {s.dead_letters()} dead letters (expected 160, 40)\n"
            f"{consumer.tail()}"
        )
        reasons = s.sql(f"SELECT error_class, count(*) FROM {s.welcome_schema}.kafka_listener_dead_letters GROUP BY 1")
        assert reasons == [("examples.signups.handlers.DomainBlockedError", 40)]
        assert s.count(f"SELECT count(*) FROM {s.signup_schema}.outbox") == 0  # all relayed

        # The restore job, once one domain is unblocked: its 20 are applied, the other 20 still fail (exit 1).
        s.sql(f"DELETE FROM {s.welcome_schema}.blocked_domains WHERE domain = %s", (RESTORED_DOMAIN,))
        restore = s.kafkaguard(s.welcome_env, "restore", "listener", "--once", "--app", APP, "--group", s.group)
        assert restore.returncode == 1, restore.stdout + restore.stderr
        assert s.welcome_emails() == SIGNUPS - 20
        assert s.dead_letters(("restored",)) == 20 and s.dead_letters(("pending",)) == 20
        still = (
            f"SELECT DISTINCT attempts, next_attempt_at > now() + interval '9 minutes' "
            f"FROM {s.welcome_schema}.kafka_listener_dead_letters WHERE status = 'pending'"
        )
        assert s.sql(still) == [(2, True)]  # the consumer's attempt and the job's; due in 10 min (welcome.toml)

        # An operator unblocks the other domain and replays its dead letters now.
        s.sql(f"DELETE FROM {s.welcome_schema}.blocked_domains WHERE domain = %s", (REPLAYED_DOMAIN,))
        replay = s.kafkaguard(
            s.welcome_env, "dead-letters", "replay", "--group", s.group, "--app", APP,
            "--error-class", "examples.signups.handlers.DomainBlockedError",
        )  # fmt: skip
        assert replay.returncode == 0, replay.stdout + replay.stderr
        consumer.alive()
        relay.alive()
    finally:
        stopped = {"relay": relay.stop(), "consume": consumer.stop()}
    assert stopped == {"relay": 0, "consume": 0}, f"{relay.tail()}\n{consumer.tail()}"

    # Exactly once: one e-mail per user, one inbox row per event, nothing left open.
    per_user = s.sql(
        f"SELECT u.id, count(w.id) FROM {s.signup_schema}.users u "
        f"LEFT JOIN {s.welcome_schema}.welcome_emails w ON w.user_id = u.id GROUP BY u.id"
    )
    assert len(per_user) == SIGNUPS and {n for _, n in per_user} == {1}
    assert s.welcome_emails() == SIGNUPS
    events = {uuid.UUID(c["event_id"]) for c in created}
    emailed = {row[0] for row in s.sql(f"SELECT event_id FROM {s.welcome_schema}.welcome_emails")}
    assert emailed == events
    inbox = f"SELECT count(*) FROM {s.welcome_schema}.kafka_inbox WHERE consumer_group = %s"
    assert s.count(inbox, (s.group,)) == SIGNUPS
    assert s.dead_letters() == 0 and s.dead_letters(("restored",)) == 40
