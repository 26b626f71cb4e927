"""Batch handler registration, how a chunk's new events are cut into calls, and the one-event call
that single mode, the fallback, restore and HTTP make (no Kafka, no database: a stand-in session)."""

from __future__ import annotations

from typing import Any

import pytest

from kafkaguard.consumer import BatchContext, HandlerContext, HandlerRegistry, Position, Record
from kafkaguard.consumer.apply import call_handler
from kafkaguard.consumer.batch import runs
from kafkaguard.consumer.registry import Registration
from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError


def _registry(seen: list[tuple[str, Any, Any]]) -> HandlerRegistry:
    reg = HandlerRegistry()

    @reg.batch_handler("a")
    def many(events: list[Event], ctx: BatchContext[Any]) -> None:
        seen.append(("many", [e.payload["n"] for e in events], ctx))

    reg.register("b", lambda event, ctx: seen.append(("one", event.payload["n"], ctx)))
    reg.register_batch("c", lambda events, ctx: None, inbox=False)
    return reg


def _item(reg: HandlerRegistry, type_: str, n: int) -> tuple[Record, Event, Registration]:
    registration = reg.get(type_)
    assert registration is not None
    return Record("t", 0, n, b"k", b"{}"), Event(type=type_, key="k", payload={"n": n}), registration


def test_registrations_carry_the_batch_flag_and_types_stay_unique() -> None:
    reg = _registry([])
    assert [(t, reg.get(t).batch, reg.get(t).inbox) for t in reg.types] == [  # type: ignore[union-attr]
        ("a", True, True),
        ("b", False, True),
        ("c", True, False),
    ]
    with pytest.raises(ConfigurationError):
        reg.register("a", lambda event, ctx: None)
    with pytest.raises(ConfigurationError):
        reg.register_batch("b", lambda events, ctx: None)


@pytest.mark.parametrize(
    ("types", "calls"),
    [
        ("", []),
        ("aaa", [[0, 1, 2]]),
        ("aabaa", [[0, 1], [2], [3, 4]]),  # a per-event type cuts a run: offset order across types
        ("bb", [[0], [1]]),  # per-event handlers: one call each
        ("aacc", [[0, 1], [2, 3]]),  # two batch types: one run each
        ("acac", [[0], [1], [2], [3]]),
    ],
)
def test_runs_cut_new_events_into_calls_in_offset_order(types: str, calls: list[list[int]]) -> None:
    reg = _registry([])
    items = [_item(reg, t, i) for i, t in enumerate(types)]
    assert [[r.offset for r, _, _ in call] for call in runs(items)] == calls


def test_a_batch_handler_gets_a_one_event_list_outside_batch_mode() -> None:
    seen: list[tuple[str, Any, Any]] = []
    reg = _registry(seen)
    session = object()
    record, event, registration = _item(reg, "a", 7)
    call_handler(registration, session, "g", record, event, 2)
    call_handler(registration, session, "g", None, event, 1)  # HTTP: no record
    (_, first, ctx1), (_, second, ctx2) = seen
    assert first == second == [7]
    assert isinstance(ctx1, BatchContext) and ctx1.session is session and ctx1.consumer_group == "g"
    assert ctx1.positions == [Position("t", 0, 7)] and ctx1.attempt == 2
    assert ctx2.positions == [None]


def test_a_per_event_handler_still_gets_its_event_and_position() -> None:
    seen: list[tuple[str, Any, Any]] = []
    reg = _registry(seen)
    record, event, registration = _item(reg, "b", 3)
    call_handler(registration, object(), "g", record, event, 1)
    [(_, n, ctx)] = seen
    assert n == 3
    assert isinstance(ctx, HandlerContext) and (ctx.topic, ctx.partition, ctx.offset) == ("t", 0, 3)
