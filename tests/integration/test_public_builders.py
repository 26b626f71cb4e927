"""An application built from ``kafkaguard``'s public names only, against the real Kafka and PostgreSQL.

``Publisher.from_settings`` writes model payloads to the outbox, ``Relay.from_settings`` publishes
them, ``Worker.from_settings`` applies them through typed handlers (sync and async); a payload the
model refuses is a permanent dead letter (reason ``invalid_payload``, raw bytes kept, one attempt);
a handler's own ``retry=`` policy sets its attempts, beside a handler on the group's policy; and
``PublisherRestoreJob.from_settings`` republishes a publisher dead letter that the worker then applies.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from pydantic import BaseModel, ConfigDict
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard import (
    Event,
    Fixed,
    HandlerContext,
    HandlerRegistry,
    KafkaguardSettings,
    Publisher,
    PublisherRestoreJob,
    PublishOutcome,
    Relay,
    RetryPolicy,
    Worker,
)
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration.consumer_helpers import rows, scalar, wait_until

GROUP = f"welcome-{uuid.uuid4().hex[:8]}"  # a group of its own on the shared broker


class SignedUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int
    email: str


class Renamed(BaseModel):
    user_id: int
    name: str


def registry_with_calls(calls: Counter[str]) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("user.signed_up", model=SignedUp)
    def welcome(payload: SignedUp, ctx: HandlerContext[Session]) -> None:
        calls["welcome"] += 1
        ctx.session.execute(
            text("INSERT INTO welcome_emails (user_id, email, event_id) VALUES (:u, :e, :i)"),
            {"u": payload.user_id, "e": payload.email, "i": ctx.event.event_id},
        )

    @registry.handler("user.renamed", model=Renamed)
    async def renamed(payload: Renamed, ctx: HandlerContext[AsyncSession]) -> None:
        calls["renamed"] += 1
        await ctx.session.execute(
            text("UPDATE welcome_emails SET name = :n WHERE user_id = :u"), {"n": payload.name, "u": payload.user_id}
        )

    @registry.handler("user.flaky", retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0)))
    def flaky(event: Event, ctx: HandlerContext[Session]) -> None:
        calls["flaky"] += 1
        raise RuntimeError("the mail server is down")  # retriable by default

    @registry.handler("user.flaky_on_group_policy")
    def flaky_on_group_policy(event: Event, ctx: HandlerContext[Session]) -> None:
        calls["group_policy"] += 1
        raise RuntimeError("the mail server is down")

    return registry


def app_settings(
    db: TestDatabase, bootstrap: str, topics: TopicFactory, *, batch_size: int = 1, **publish: Any
) -> KafkaguardSettings:
    return KafkaguardSettings(
        bootstrap_servers=bootstrap,
        database_url=db.server.url(),
        db_schema=db.schema,
        topics={"pattern": topics.prefix + ".{aggregate_type}"},
        relay={"poll_interval": 0.5},
        consumer={"group_id": GROUP, "topics": [topics.prefix + ".user"], "batch_size": batch_size},
        publish=publish,
    )


@contextmanager
def running(target: Any, *args: Any, stop: Any) -> Iterator[None]:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop()
        thread.join(60)
        assert not thread.is_alive(), f"{target} did not stop"


@pytest.mark.parametrize("batch_size", [1, 50], ids=["per-event", "batch"])
def test_an_app_from_the_public_builders_typed_handlers_and_per_handler_retries(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase, batch_size: int
) -> None:
    """In chunk mode a refused payload or a failing handler is isolated from its chunk and goes the
    per-event way, where the same decisions are made."""
    db = migrated_database
    topics("user")
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE welcome_emails (user_id bigint PRIMARY KEY, email text, name text, event_id uuid)")
    settings = app_settings(db, kafka_bootstrap, topics, batch_size=batch_size)
    calls: Counter[str] = Counter()
    registry = registry_with_calls(calls)

    good = [
        Event(type="user.signed_up", key=f"user-{i}", payload=SignedUp(user_id=i, email=f"u{i}@x")) for i in (1, 2, 3)
    ]
    renamed = Event(type="user.renamed", key="user-1", payload=Renamed(user_id=1, name="Ada"))
    bad = Event(type="user.signed_up", key="user-bad", payload={"user_id": "not a number", "email": "b@x", "extra": 1})
    flaky = Event(type="user.flaky", key="user-flaky", payload={})
    on_group = Event(type="user.flaky_on_group_policy", key="user-group", payload={})
    publisher = Publisher.from_settings(settings)
    engine = create_engine(db.url)
    try:
        with Session(engine) as session, session.begin():
            outcomes = {publisher.publish(session, e) for e in [*good, renamed, bad, flaky, on_group]}
        assert outcomes == {PublishOutcome.OUTBOX}
    finally:
        publisher.close()
        engine.dispose()

    relay, relay_stop = Relay.from_settings(settings, name="test-public-relay"), threading.Event()
    worker = Worker.from_settings(settings, registry)
    with running(relay.run, relay_stop, stop=relay_stop.set), running(worker.run, stop=worker.stop):
        wait_until(
            lambda: (
                scalar(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == 3
                and scalar(db.conninfo, "SELECT count(*) FROM welcome_emails WHERE name IS NOT NULL") == 1
            ),
            60,
            "3 applied sign-ups, 1 rename and 3 dead letters",
        )

        # The worker is still running: a publisher dead letter (direct mode, Kafka unreachable) is
        # republished by the restore job and applied like any event.
        late = Event(type="user.signed_up", key="user-4", payload=SignedUp(user_id=4, email="u4@x"))
        unreachable = app_settings(db, "127.0.0.1:1", topics, default_mode="direct", direct_timeout=1.0)
        direct = Publisher.from_settings(unreachable)
        engine = create_engine(db.url)
        try:
            with Session(engine) as session, session.begin():
                assert direct.publish(session, late) is PublishOutcome.DEAD_LETTERED
        finally:
            direct.close()
            engine.dispose()
        job = PublisherRestoreJob.from_settings(settings)
        try:
            assert job.run_once().restored == 1
        finally:
            job.close()
        wait_until(lambda: scalar(db.conninfo, "SELECT count(*) FROM welcome_emails") == 4, 60, "the restored event")

    assert rows(db.conninfo, "SELECT user_id, email, name, event_id FROM welcome_emails ORDER BY user_id") == [
        (1, "u1@x", "Ada", good[0].event_id),
        (2, "u2@x", None, good[1].event_id),
        (3, "u3@x", None, good[2].event_id),
        (4, "u4@x", None, late.event_id),
    ]
    dead = {
        r[0]: r[1:]
        for r in rows(
            db.conninfo,
            "SELECT key, reason, attempts, status, error_class, error_message, raw_value "
            "FROM kafka_listener_dead_letters WHERE consumer_group = %(g)s",
            {"g": GROUP},
        )
    }
    reason, attempts, status, error_class, message, raw = dead["user-bad"]
    assert (reason, attempts, status) == ("invalid_payload", 1, "pending")  # at once: never retried
    assert error_class == "kafkaguard.errors.PayloadValidationError"
    assert "not a valid SignedUp" in message and "user_id" in message and "extra" in message
    assert json.loads(bytes(raw)) == bad.payload  # the raw bytes (PostgreSQL's jsonb text, as relayed) are kept
    assert dead["user-flaky"][:3] == ("handler_error", 2, "pending")  # its own policy: 2 attempts
    assert dead["user-group"][:3] == ("handler_error", 3, "pending")  # the group's default: 3 attempts
    counts = (calls["welcome"], calls["renamed"], calls["flaky"], calls["group_policy"])
    assert worker.stats["dead_lettered"] == 3 and worker.stats["applied"] == 5
    if batch_size == 1:
        assert counts == (4, 1, 2, 3)
    else:
        # A chunk rolled back for the refused payload or a failing handler; the others' handlers may
        # have run in it before (their effects did not commit: the rows above are exact), and a
        # failing handler runs once in the chunk before its own attempts.
        assert worker.batches["fell_back"] >= 1
        assert all(n >= want for n, want in zip(counts, (4, 1, 2, 3), strict=True)), counts
        assert counts[2] <= 3 and counts[3] <= 4, counts


def test_the_http_endpoint_applies_a_typed_handler_and_refuses_a_bad_payload_with_422(
    migrated_database: TestDatabase,
) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from kafkaguard import receiving_router
    from tests.http_auth import RECEIVER, Signing

    db = migrated_database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE welcome_emails (user_id bigint PRIMARY KEY, email text, name text, event_id uuid)")
    calls: Counter[str] = Counter()
    engine = create_engine(db.url)
    api = FastAPI()
    api.include_router(receiving_router(registry_with_calls(calls), engine, GROUP, settings=RECEIVER))
    client = TestClient(api)
    client.auth = Signing()
    good = Event(type="user.signed_up", key="user-1", payload=SignedUp(user_id=1, email="u1@x"))
    bad = Event(type="user.signed_up", key="user-2", payload={"user_id": 2})  # no email
    try:
        applied = client.post("/kafkaguard/events", json=good.to_json())
        refused = client.post("/kafkaguard/events", json=bad.to_json())
    finally:
        engine.dispose()
    assert (applied.status_code, applied.json()["status"]) == (200, "applied")
    assert refused.status_code == 422  # permanent: the sender dead-letters it, never retries
    assert refused.json()["error_class"] == "kafkaguard.errors.PayloadValidationError"
    assert rows(db.conninfo, "SELECT user_id, email FROM welcome_emails") == [(1, "u1@x")]
    assert calls["welcome"] == 1
