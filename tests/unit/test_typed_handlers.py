"""Typed handlers (``model=``) and per-handler retry policies (``retry=``), with stand-ins only.

The handler is called through :func:`call_handler` (what per-event mode, the fallback of a chunk,
the restore job and the HTTP endpoint call); the retry loop is :meth:`Applier.apply_with_retries`
with the transaction and the dead-letter write replaced by in-memory stand-ins.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

import pytest
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from kafkaguard import (
    BatchContext,
    ConfigurationError,
    ConsumerSettings,
    ErrorClassifier,
    Event,
    Exponential,
    Fixed,
    HandlerContext,
    HandlerRegistry,
    KafkaguardError,
    Outcome,
    PayloadValidationError,
    RetryPolicy,
)
from kafkaguard.consumer.apply import Applier, call_handler
from kafkaguard.consumer.decisions import after_failure, failure_reason
from kafkaguard.consumer.registry import Registration
from kafkaguard.policies.retry import GiveUp, Retry
from kafkaguard.testing import Record


class SignedUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: int
    email: str = Field(alias="emailAddress")


SESSION = object()  # a stand-in session: the handlers here do not touch it
GOOD = {"user_id": 7, "emailAddress": "a@b"}
BAD = {"user_id": "seven", "emailAddress": "a@b", "unknown": 1}


def event(payload: dict[str, Any] | BaseModel, key: str = "user-7", type_: str = "user.signed_up") -> Event:
    return Event(type=type_, key=key, payload=payload)


def registration(registry: HandlerRegistry, type_: str = "user.signed_up") -> Registration:
    reg = registry.get(type_)
    assert reg is not None
    return reg


def test_a_typed_handler_gets_the_model_and_the_envelope_in_ctx() -> None:
    registry, seen = HandlerRegistry(), []

    @registry.handler("user.signed_up", model=SignedUp)
    def welcome(payload: SignedUp, ctx: HandlerContext[Any]) -> None:
        seen.append((payload, ctx.event))

    e = event(GOOD)
    call_handler(registration(registry), SESSION, "g", None, e, 1)
    assert seen == [(SignedUp(user_id=7, emailAddress="a@b"), e)]
    assert welcome.__name__ == "welcome"  # the decorator returns the user's function unchanged
    assert registration(registry).model is SignedUp and not registration(registry).is_async


def test_an_async_typed_handler_stays_async() -> None:
    registry, seen = HandlerRegistry(), []

    @registry.handler("user.signed_up", model=SignedUp)
    async def welcome(payload: SignedUp, ctx: HandlerContext[Any]) -> None:
        seen.append(payload.user_id)

    reg = registration(registry)
    assert reg.is_async
    asyncio.run(call_handler(reg, SESSION, "g", None, event(GOOD), 1))
    assert seen == [7]
    with pytest.raises(PayloadValidationError):
        asyncio.run(call_handler(reg, SESSION, "g", None, event(BAD), 1))
    assert seen == [7]


@pytest.mark.parametrize("is_async", [False, True])
def test_a_typed_batch_handler_gets_models_and_envelopes(is_async: bool) -> None:
    registry, seen = HandlerRegistry(), []

    def many(payloads: list[SignedUp], ctx: BatchContext[Any]) -> None:
        seen.append(([p.user_id for p in payloads], [e.key for e in ctx.events]))

    async def many_async(payloads: list[SignedUp], ctx: BatchContext[Any]) -> None:
        many(payloads, ctx)

    registry.register_batch("user.signed_up", many_async if is_async else many, model=SignedUp)
    reg = registration(registry)
    events = [event({**GOOD, "user_id": i}, key=f"user-{i}") for i in (1, 2)]
    result = reg.func(events, BatchContext(SESSION, "g", [None, None]))
    if is_async:
        asyncio.run(result)
    assert seen == [([1, 2], ["user-1", "user-2"])]
    # One bad payload in a run fails the call before the handler runs (the chunk then goes per event).
    with pytest.raises(PayloadValidationError):
        result = reg.func([events[0], event(BAD)], BatchContext(SESSION, "g", [None, None]))
        if is_async:
            asyncio.run(result)
    assert len(seen) == 1


def test_a_refused_payload_is_one_line_naming_the_model_the_event_and_every_field() -> None:
    registry, calls = HandlerRegistry(), []
    registry.register("user.signed_up", lambda payload, ctx: calls.append(payload), model=SignedUp)
    bad = event(BAD)
    with pytest.raises(PayloadValidationError) as caught:
        call_handler(registration(registry), SESSION, "g", None, bad, 1)
    message = str(caught.value)
    assert "\n" not in message and calls == []
    assert f"user.signed_up event {bad.event_id} is not a valid SignedUp: 2 error(s)" in message
    assert "user_id: Input should be a valid integer" in message and "unknown: Extra inputs" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert isinstance(caught.value, KafkaguardError)


def test_a_refused_payload_is_permanent_whatever_the_classifier_says() -> None:
    exc = PayloadValidationError("payload ... is not a valid SignedUp")
    everything_retriable = ConsumerSettings(classifier=ErrorClassifier(retriable=("Exception",), permanent=()))
    assert not everything_retriable.classifier.is_retriable(exc)
    assert after_failure(1, exc, everything_retriable) == GiveUp("permanent")
    assert failure_reason(exc) == "invalid_payload"
    assert failure_reason(RuntimeError("x")) == "handler_error"


def test_a_handler_policy_overrides_the_group_policy() -> None:
    group = ConsumerSettings(retry=RetryPolicy(max_attempts=3, backoff=Fixed(seconds=1)))
    own = RetryPolicy(max_attempts=5, backoff=Exponential(base=2, factor=3, max_seconds=100, jitter=0))
    exc = RuntimeError("down")
    assert after_failure(2, exc, group) == Retry(1.0)
    assert after_failure(3, exc, group) == GiveUp("exhausted")
    assert after_failure(2, exc, group, policy=own) == Retry(6.0)
    assert after_failure(4, exc, group, policy=own) == Retry(54.0)
    assert after_failure(5, exc, group, policy=own) == GiveUp("exhausted")
    assert after_failure(1, ValueError("bad"), group, policy=own) == GiveUp("permanent")  # classifier still decides


def test_model_and_retry_options_are_checked_at_registration() -> None:
    registry = HandlerRegistry()
    with pytest.raises(ConfigurationError, match="must be a pydantic model class"):
        registry.register("a", lambda p, ctx: None, model=dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a kafkaguard RetryPolicy"):
        registry.register("a", lambda e, ctx: None, retry={"max_attempts": 2})  # type: ignore[arg-type]
    policy = RetryPolicy(max_attempts=9)
    registry.register("a", lambda e, ctx: None, retry=policy)
    assert registration(registry, "a").retry is policy and registration(registry, "a").model is None


class MemoryApplier(Applier):
    """:class:`Applier` whose transaction runs the handler against a stand-in session, and whose dead
    letters are kept in a list: the retry loop and the dead-letter decision are the real ones."""

    def __init__(self, registry: HandlerRegistry, settings: ConsumerSettings) -> None:
        super().__init__(cast(Engine, None), registry, settings, stop=threading.Event())
        self.dead: list[tuple[str, int, str]] = []

    def apply_once(self, record: Record | None, event: Event, reg: Registration, attempt: int) -> Outcome:
        result = call_handler(reg, SESSION, self.group, record, event, attempt)
        if reg.is_async:
            asyncio.run(result)
        return Outcome.APPLIED

    def dead_letter(
        self, record: Record, event: Event | None, *, reason: str, exc: BaseException, attempts: int
    ) -> Outcome:
        self.dead.append((reason, attempts, type(exc).__name__))
        return Outcome.DEAD_LETTERED


def record(e: Event, offset: int = 0) -> Record:
    return Record("t", 0, offset, e.key.encode(), e.payload_bytes(), e.kafka_headers())  # type: ignore[arg-type]


def test_the_applier_dead_letters_a_refused_payload_at_once_and_retries_by_the_handler_policy() -> None:
    registry, calls = HandlerRegistry(), {"typed": 0, "own": 0, "group": 0}

    @registry.handler("user.signed_up", model=SignedUp)
    def typed(payload: SignedUp, ctx: HandlerContext[Any]) -> None:
        calls["typed"] += 1

    @registry.handler("own.policy", retry=RetryPolicy(max_attempts=5, backoff=Fixed(seconds=0)))
    def own(e: Event, ctx: HandlerContext[Any]) -> None:
        calls["own"] += 1
        raise RuntimeError("down")

    @registry.handler("group.policy")
    def group(e: Event, ctx: HandlerContext[Any]) -> None:
        calls["group"] += 1
        raise RuntimeError("down")

    settings = ConsumerSettings(retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0)))
    applier = MemoryApplier(registry, settings)
    assert applier.process(record(event(BAD))) is Outcome.DEAD_LETTERED
    assert applier.process(record(event(GOOD), 1)) is Outcome.APPLIED
    assert applier.process(record(event({}, type_="own.policy"), 2)) is Outcome.DEAD_LETTERED
    assert applier.process(record(event({}, type_="group.policy"), 3)) is Outcome.DEAD_LETTERED
    assert applier.dead == [
        ("invalid_payload", 1, "PayloadValidationError"),  # never retried
        ("handler_error", 5, "RuntimeError"),  # the handler's policy
        ("handler_error", 2, "RuntimeError"),  # the group's policy
    ]
    assert calls == {"typed": 1, "own": 5, "group": 2}


def test_an_event_takes_a_model_as_its_payload() -> None:
    model = SignedUp(user_id=7, emailAddress="a@b")
    e = Event(type="user.signed_up", key="user-7", payload=model)
    assert e.payload == GOOD  # by alias, JSON-ready: what the typed handler validates back
    assert SignedUp.model_validate(e.payload) == model
    assert e.payload_bytes() == b'{"user_id":7,"emailAddress":"a@b"}'


def test_ctx_connection_is_for_sync_handlers_on_a_sql_store_and_says_so_otherwise() -> None:
    from sqlalchemy import create_engine as sa_engine
    from sqlalchemy.orm import Session as SaSession

    from kafkaguard import ConfigurationError, Event, HandlerContext

    event = Event(type="t", key="k", payload={})
    with pytest.raises(ConfigurationError, match="async handlers and document stores use ctx.session"):
        _ = HandlerContext(session=object(), consumer_group="g", event=event).connection
    with SaSession(sa_engine("sqlite://")) as session:
        raw = HandlerContext(session=session, consumer_group="g", event=event).connection
        raw.execute("CREATE TABLE seen (id TEXT)")  # the driver's own connection (sqlite3 here)
        raw.execute("INSERT INTO seen VALUES (?)", ("a",))
        assert session.connection().exec_driver_sql("SELECT count(*) FROM seen").scalar_one() == 1  # same transaction
