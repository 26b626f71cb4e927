"""The consumer's apply path over the in-memory store: applied, duplicate, id conflict, parked,
dead letters (retriable, permanent, unknown type, undecodable), store outage, batch mode, async."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from kafkaguard.consumer import HandlerRegistry, Outcome, Record, Worker
from kafkaguard.consumer.batch import apply_batch
from kafkaguard.envelope import Event
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.testing import MemoryConsumerStore, MemorySource
from tests.unit.consumer_fakes import GROUP, applier, record


def _registry(seen: list[Any], fail: dict[str, list[BaseException]] | None = None) -> HandlerRegistry:
    reg = HandlerRegistry()
    failures = fail if fail is not None else {}

    @reg.handler("t.made")
    def made(event: Event, ctx: Any) -> None:
        queue = failures.get(event.key)
        if queue:
            raise queue.pop(0)
        seen.append((event.key, event.payload["n"]))

    return reg


def _event(key: str, n: int, **kw: Any) -> Event:
    return Event(type="t.made", key=key, payload={"n": n}, **kw)


def test_applied_then_a_redelivery_is_a_duplicate() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen))
    ev = _event("k", 1)
    assert a.process(record(ev, 0)) is Outcome.APPLIED
    assert a.process(record(ev, 0)) is Outcome.DUPLICATE
    assert seen == [("k", 1)]
    assert (GROUP, ev.event_id) in store.inbox


def test_same_id_other_content_is_an_id_conflict_and_dead_lettered() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen))
    ev = _event("k", 1)
    a.process(record(ev, 0))
    forged = Event(type="t.made", key="k", payload={"n": 2}, event_id=ev.event_id)
    assert a.process(record(forged, 1)) is Outcome.ID_CONFLICT
    assert seen == [("k", 1)]
    assert [r["reason"] for r in store.dead_letters_of(GROUP)] == ["id_conflict"]


def test_retriable_failure_retries_then_dead_letters_and_later_events_of_the_key_park() -> None:
    store, seen = MemoryConsumerStore(), []
    fail: dict[str, list[BaseException]] = {"k": [TimeoutError("slow")] * 3}
    a = applier(store, _registry(seen, fail))
    assert a.process(record(_event("k", 1), 0)) is Outcome.DEAD_LETTERED
    assert a.process(record(_event("k", 2), 1)) is Outcome.PARKED
    assert a.process(record(_event("other", 3), 2)) is Outcome.APPLIED  # other keys keep flowing
    rows = store.dead_letters_of(GROUP)
    assert [(r["status"], r["attempts"], r["offset"]) for r in rows] == [("pending", 3, 0), ("parked", 0, 1)]
    assert seen == [("other", 3)]
    assert not [k for (_, _), k in store.inbox.items() if k["key"] == "k"]  # nothing of k applied


def test_retriable_failure_that_recovers_is_applied_once() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen, {"k": [TimeoutError("once")]}))
    assert a.process(record(_event("k", 1), 0)) is Outcome.APPLIED
    assert seen == [("k", 1)] and not store.records


def test_permanent_failure_dead_letters_at_once_and_rolls_back_the_attempt() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen, {"k": [ValueError("bad"), ValueError("again")]}))
    assert a.process(record(_event("k", 1), 0)) is Outcome.DEAD_LETTERED
    (row,) = store.dead_letters_of(GROUP)
    assert (row["attempts"], row["reason"], row["error_class"]) == (1, "handler_error", "ValueError")
    assert not store.inbox  # the failed attempt's inbox row was rolled back with it


def test_unknown_type_and_undecodable_messages_become_dead_letters_with_their_bytes() -> None:
    store = MemoryConsumerStore()
    a = applier(store, _registry([]))
    other = Event(type="t.unknown", key="k", payload={})
    assert a.process(record(other, 0)) is Outcome.DEAD_LETTERED
    assert a.process(Record("t", 0, 1, b"k2", b"\xff not json", [])) is Outcome.DEAD_LETTERED
    reasons = [(r["reason"], r["raw_value"]) for r in store.dead_letters_of(GROUP)]
    assert reasons[0][0] == "unknown_type"
    assert reasons[1] == (reasons[1][0], b"\xff not json") and reasons[1][0] != "unknown_type"


def test_store_outage_raises_dead_letters_nothing_and_the_worker_pauses_then_redelivers() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen), store_backoff_max=0.05)
    store.down = True
    with pytest.raises(StoreUnavailableError):
        a.process(record(_event("k", 1), 0))
    assert not store.records and not store.last_resort_rows

    source = MemorySource([record(_event("k", n), n) for n in range(3)])
    worker = Worker(source, a)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not source.paused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert source.paused and seen == []
    store.down = False
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    thread.join(5)
    assert seen == [("k", 0), ("k", 1), ("k", 2)]  # redelivered in order, each applied once
    assert worker.stats["store_outages"] == 1 and source.committed == {("t", 0): 3}


def test_a_session_factory_commits_with_the_transaction_and_rolls_back_with_it() -> None:
    class Session:
        def __init__(self) -> None:
            self.state = "open"

        def commit(self) -> None:
            self.state = "committed"

        def rollback(self) -> None:
            self.state = "rolled back"

    sessions: list[Session] = []

    def factory() -> Session:
        sessions.append(Session())
        return sessions[-1]

    store = MemoryConsumerStore(factory)
    got: list[Any] = []
    reg = HandlerRegistry()

    @reg.handler("t.made")
    def made(event: Event, ctx: Any) -> None:
        got.append(ctx.session)
        if event.payload["n"] == 2:
            raise ValueError("no")

    a = applier(store, reg)
    a.process(record(_event("k", 1), 0))
    a.process(record(_event("j", 2), 1))
    assert got[0] is sessions[0] and sessions[0].state == "committed"
    assert got[1] is sessions[1] and sessions[1].state == "rolled back"


def test_batch_mode_applies_a_chunk_in_one_transaction_and_finds_duplicates() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen), batch_size=10)
    first = [record(_event(f"k{n}", n), n) for n in range(3)]
    assert apply_batch(a, first).outcomes == [Outcome.APPLIED] * 3
    again = [*first[:2], record(_event("k9", 9), 3)]
    assert apply_batch(a, again).outcomes == [Outcome.DUPLICATE, Outcome.DUPLICATE, Outcome.APPLIED]
    assert sorted(seen) == [("k0", 0), ("k1", 1), ("k2", 2), ("k9", 9)]


def test_a_failing_handler_rolls_the_chunk_back_and_names_the_record_to_isolate() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen, {"bad": [ValueError("x")]}), batch_size=10)
    result = apply_batch(a, [record(_event("ok", 1), 0), record(_event("bad", 2), 1), record(_event("z", 3), 2)])
    assert (result.outcomes, result.isolate, result.rolled_back) == ([], (1, 2), True)
    assert not store.inbox  # the chunk's transaction was rolled back: its inbox rows are gone


def test_a_blocked_key_parks_its_records_inside_the_chunk() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen, {"blk": [ValueError("y")]}), batch_size=10)
    assert a.process(record(_event("blk", 1), 6)) is Outcome.DEAD_LETTERED
    result = apply_batch(a, [record(_event("x", 1), 7), record(_event("blk", 2), 8), record(_event("x", 3), 9)])
    assert (result.outcomes, result.isolate) == ([Outcome.APPLIED, Outcome.PARKED, Outcome.APPLIED], None)
    assert seen == [("x", 1), ("x", 3)]
    assert [(r["status"], r["offset"]) for r in store.dead_letters_of(GROUP)] == [("pending", 6), ("parked", 8)]


def test_worker_in_chunk_mode_counts_applied_rolled_back_chunks_and_isolated_records() -> None:
    store, seen = MemoryConsumerStore(), []
    a = applier(store, _registry(seen, {"bad": [ValueError("x")] * 2}), batch_size=2)
    source = MemorySource([record(_event(k, n), n) for n, k in enumerate(["a", "b", "bad", "c", "d"])])
    worker = Worker(source, a)
    worker._process(source.poll(10, 0))
    # [a b] committed; [bad c] rolled back; bad alone (dead letter); [c d] committed.
    assert worker.batches == {"applied": 2, "fell_back": 1, "isolated": 1}
    assert worker.stats == {"applied": 4, "dead_lettered": 1}


def test_async_handlers_run_the_same_steps_including_parking() -> None:
    store, seen = MemoryConsumerStore(), []
    reg = HandlerRegistry()

    @reg.handler("t.made")
    async def made(event: Event, ctx: Any) -> None:
        if event.payload["n"] == 1:
            raise ValueError("async failure")
        seen.append(event.payload["n"])

    a = applier(store, reg)
    try:
        assert a.process(record(_event("k", 1), 0)) is Outcome.DEAD_LETTERED
        assert a.process(record(_event("k", 2), 1)) is Outcome.PARKED  # the async path parks too
        ev = _event("j", 3)
        assert a.process(record(ev, 2)) is Outcome.APPLIED
        assert a.process(record(ev, 2)) is Outcome.DUPLICATE
    finally:
        a.close()
    assert seen == [3]
