"""Chunk mode (the default ``batch_size``) over the in-memory store: a record that cannot go in a
chunk is isolated — the records before it applied as a chunk, it alone through the per-event path
(retries, dead letter), the rest as chunks — in offset order, with offsets committed only for
durable outcomes. Effects are counted by a stand-in session that keeps only committed writes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kafkaguard.consumer import HandlerRegistry, Outcome, Record, Worker
from kafkaguard.consumer.batch import apply_batch
from kafkaguard.envelope import Event
from kafkaguard.testing import MemoryConsumerStore, MemorySource
from kafkaguard.testing.fakes.consumer_store import MemoryStoreDown
from tests.unit.consumer_fakes import GROUP, applier, record


class Effects:
    """A session factory: each session's writes land in :attr:`committed` when it commits."""

    def __init__(self) -> None:
        self.committed: list[tuple[str, int]] = []

    def __call__(self) -> Session:
        return Session(self)


class Session:
    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self.writes: list[tuple[str, int]] = []

    def commit(self) -> None:
        self.effects.committed += self.writes

    def rollback(self) -> None:
        self.writes = []


def _event(key: str, n: int, type_: str = "t.made") -> Event:
    return Event(type=type_, key=key, payload={"n": n})


def _registry(calls: list[int], fail: dict[int, list[BaseException]] | None = None) -> HandlerRegistry:
    """``t.made``: writes ``(key, n)``; raises the queued errors of ``n`` first. ``t.many``: the same
    as a batch handler. ``calls`` gets every ``n`` a handler was called with (rolled back or not)."""
    failures = fail if fail is not None else {}
    reg = HandlerRegistry()

    def one(event: Event, session: Session) -> None:
        n = event.payload["n"]
        calls.append(n)
        queue = failures.get(n)
        if queue:
            raise queue.pop(0)
        session.writes.append((event.key, n))

    reg.register("t.made", lambda event, ctx: one(event, ctx.session))
    reg.register_batch("t.many", lambda events, ctx: [one(e, ctx.session) for e in events])
    return reg


def _worker(events: list[Event], registry: HandlerRegistry, **settings: Any) -> tuple[Worker, Effects, MemorySource]:
    effects = Effects()
    store = MemoryConsumerStore(effects)
    source = MemorySource([record(e, n) for n, e in enumerate(events)])
    return Worker(source, applier(store, registry, **settings)), effects, source


def _run(worker: Worker, source: MemorySource) -> None:
    worker._process(source.poll(1000, 0))
    worker._commit()


def _store(worker: Worker) -> MemoryConsumerStore:
    store = worker.applier.store
    assert isinstance(store, MemoryConsumerStore)
    return store


def test_the_default_is_chunk_mode() -> None:
    from kafkaguard.consumer.settings import ConsumerSettings

    assert ConsumerSettings().batch_size == 500


def test_a_failing_handler_isolates_its_event_the_prefix_and_the_rest_go_as_chunks() -> None:
    calls: list[int] = []
    events = [_event(f"k{n}", n) for n in range(6)]
    worker, effects, source = _worker(events, _registry(calls, {2: [ValueError("bad")] * 5}))
    _run(worker, source)
    assert sorted(effects.committed) == [("k0", 0), ("k1", 1), ("k3", 3), ("k4", 4), ("k5", 5)]
    # 0, 1 ran in the rolled-back chunk and again in the prefix chunk; 2 once there, once alone
    # (ValueError is permanent: no retry); 3..5 only in the rest's chunk.
    assert calls == [0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert worker.batches == {"applied": 2, "fell_back": 1, "isolated": 1}
    assert worker.stats == {"applied": 5, "dead_lettered": 1}
    [dead] = _store(worker).dead_letters_of(GROUP)
    assert (dead["offset"], dead["reason"], dead["attempts"]) == (2, "handler_error", 1)
    assert source.committed == {("t", 0): 6}


def test_an_isolated_event_is_retried_alone_and_applied_when_it_recovers() -> None:
    calls: list[int] = []
    events = [_event(f"k{n}", n) for n in range(4)]
    worker, effects, source = _worker(events, _registry(calls, {1: [TimeoutError("slow")] * 2}))
    _run(worker, source)
    assert sorted(effects.committed) == [(f"k{n}", n) for n in range(4)]
    assert calls == [0, 1, 0, 1, 1, 2, 3]  # chunk; prefix [0] (per event); 1 alone: retry, then applied; [2 3]
    assert worker.stats == {"applied": 4} and not _store(worker).records


def test_a_key_keeps_its_order_around_an_isolated_event_and_parks_behind_its_dead_letter() -> None:
    calls: list[int] = []
    events = [_event("k" if n % 2 == 0 else "j", n) for n in range(8)]  # k: 0 2 4 6, j: 1 3 5 7
    worker, effects, source = _worker(events, _registry(calls, {2: [ValueError("bad")] * 5}), batch_size=3)
    _run(worker, source)
    assert effects.committed == [("k", 0), ("j", 1), ("j", 3), ("j", 5), ("j", 7)]  # in offset order
    rows = _store(worker).dead_letters_of(GROUP, key="k")
    assert [(r["offset"], r["status"]) for r in rows] == [(2, "pending"), (4, "parked"), (6, "parked")]
    assert worker.stats == {"applied": 5, "dead_lettered": 1, "parked": 2}
    assert source.committed == {("t", 0): 8}


def test_an_undecodable_message_cuts_the_chunk_without_a_rollback() -> None:
    calls: list[int] = []
    events = [_event(f"k{n}", n) for n in range(5)]
    effects = Effects()
    store = MemoryConsumerStore(effects)
    records = [record(e, n) for n, e in enumerate(events)]
    records[2] = dataclasses.replace(records[2], value=b"\xff not json")
    source = MemorySource(records)
    worker = Worker(source, applier(store, _registry(calls)))
    _run(worker, source)
    assert calls == [0, 1, 3, 4]  # every handler ran once: the chunk was cut before its transaction
    assert worker.batches == {"applied": 2, "isolated": 1}  # [0 1], [3 4] and, alone, the bad one
    [dead] = store.dead_letters_of(GROUP)
    assert dead["offset"] == 2 and dead["raw_value"] == b"\xff not json"
    assert source.committed == {("t", 0): 5}


def test_unknown_types_are_isolated_or_ignored_inside_the_chunk() -> None:
    calls: list[int] = []
    events = [_event("a", 0), _event("b", 1, type_="t.unknown"), _event("c", 2)]
    worker, _, source = _worker(events, _registry(calls))
    _run(worker, source)
    assert worker.stats == {"applied": 2, "dead_lettered": 1}
    assert [r["reason"] for r in _store(worker).dead_letters_of(GROUP)] == ["unknown_type"]

    registry = _registry(calls)
    registry.ignore_unknown = True
    worker, _, source = _worker(events, registry)
    _run(worker, source)
    assert worker.stats == {"applied": 2, "ignored": 1} and worker.batches == {"applied": 1}


def test_duplicates_and_id_conflicts_inside_a_chunk_and_against_the_inbox() -> None:
    calls: list[int] = []
    first = _event("k", 0)
    applied_before = _event("j", 1)
    forged = dataclasses.replace(_event("j", 9), event_id=applied_before.event_id)  # same id, other content
    twin = dataclasses.replace(_event("k", 7), event_id=first.event_id)  # in the chunk, other content
    effects = Effects()
    store = MemoryConsumerStore(effects)
    a = applier(store, _registry(calls))
    assert a.process(record(applied_before, 100)) is Outcome.APPLIED
    records = [record(e, n) for n, e in enumerate([first, first, forged, _event("m", 3), twin, _event("m", 5)])]
    source = MemorySource(records)
    worker = Worker(source, a)
    _run(worker, source)
    assert worker.stats == {"applied": 3, "duplicate": 1, "id_conflict": 2}
    assert [(r["offset"], r["reason"]) for r in store.dead_letters_of(GROUP)] == [
        (2, "id_conflict"),
        (4, "id_conflict"),
    ]
    assert sorted(effects.committed) == [("j", 1), ("k", 0), ("m", 3), ("m", 5)]


def test_a_batch_handler_run_that_fails_goes_per_event_and_only_the_bad_event_is_dead_lettered() -> None:
    calls: list[int] = []
    events = [_event("k", 0), *[_event(f"b{n}", n, type_="t.many") for n in range(1, 5)], _event("k", 5)]
    worker, effects, source = _worker(events, _registry(calls, {3: [ValueError("bad")] * 5}))
    _run(worker, source)
    assert sorted(effects.committed) == [("b1", 1), ("b2", 2), ("b4", 4), ("k", 0), ("k", 5)]
    assert worker.stats == {"applied": 5, "dead_lettered": 1}
    assert worker.batches["isolated"] == 4  # the failed run: its four events one by one


def test_an_outage_while_an_event_is_isolated_commits_only_what_is_durable() -> None:
    store = MemoryConsumerStore(Effects())
    attempts: list[int] = []
    reg = HandlerRegistry()

    @reg.handler("t.made")
    def made(event: Event, ctx: Any) -> None:
        if event.payload["n"] == 2:
            attempts.append(2)
            if len(attempts) == 1:
                raise ValueError("in the chunk")
            store.down = True  # PostgreSQL goes away while the event is retried alone
            raise MemoryStoreDown("gone")
        ctx.session.writes.append((event.key, event.payload["n"]))

    source = MemorySource([record(_event(f"k{n}", n), n) for n in range(5)])
    worker = Worker(source, applier(store, reg))
    worker.stop()  # the outage wait returns at once instead of probing the store
    _run(worker, source)
    assert not store.records  # an outage is never a dead letter
    assert source.committed == {("t", 0): 2}  # nothing past the first record without an outcome
    assert source.positions == {("t", 0): 2}  # rewound to it: redelivered after the outage
    assert worker.stats == {"applied": 2, "store_outages": 1}
    effects = store.session_factory
    assert isinstance(effects, Effects) and sorted(effects.committed) == [("k0", 0), ("k1", 1)]


def test_a_chunk_of_one_takes_the_per_event_path() -> None:
    calls: list[int] = []
    worker, effects, source = _worker([_event("k", 0)], _registry(calls))
    _run(worker, source)
    assert effects.committed == [("k", 0)] and not worker.batches


def test_batch_size_one_is_a_transaction_per_event() -> None:
    calls: list[int] = []
    worker, effects, source = _worker([_event(f"k{n}", n) for n in range(3)], _registry(calls), batch_size=1)
    _run(worker, source)
    assert len(effects.committed) == 3 and not worker.batches


@pytest.mark.parametrize("fail_at", [None, 1])
def test_async_handlers_run_in_one_async_chunk_transaction(fail_at: int | None) -> None:
    seen: list[int] = []
    reg = HandlerRegistry()

    @reg.handler("t.made")
    async def made(event: Event, ctx: Any) -> None:
        seen.append(event.payload["n"])
        if event.payload["n"] == fail_at:
            raise ValueError("async failure")

    reg.register("t.sync", lambda event, ctx: seen.append(event.payload["n"]))
    events = [_event("a", 0), _event("b", 1), _event("c", 2, type_="t.sync"), _event("d", 3)]
    store = MemoryConsumerStore()
    source = MemorySource([record(e, n) for n, e in enumerate(events)])
    worker = Worker(source, applier(store, reg))
    try:
        _run(worker, source)
    finally:
        worker.applier.close()
    if fail_at is None:
        assert seen == [0, 1, 2, 3] and worker.batches == {"applied": 1}
        assert worker.stats == {"applied": 4}
    else:
        assert seen == [0, 1, 0, 1, 2, 3]  # the chunk to 1; [0] alone; 1 alone; [2 3]
        assert worker.stats == {"applied": 3, "dead_lettered": 1}
    assert len(store.inbox) == (4 if fail_at is None else 3)


def test_apply_batch_parks_a_blocked_keys_duplicate_as_a_duplicate() -> None:
    calls: list[int] = []
    store = MemoryConsumerStore(Effects())
    a = applier(store, _registry(calls, {1: [ValueError("bad")]}))
    old = _event("k", 0)
    assert a.process(record(old, 0)) is Outcome.APPLIED
    assert a.process(record(_event("k", 1), 1)) is Outcome.DEAD_LETTERED
    result = apply_batch(a, [record(old, 0), record(_event("k", 2), 2), Record("t", 0, 3, b"x", b"{}", [])])
    assert result.outcomes == [Outcome.DUPLICATE, Outcome.PARKED] and result.isolate == (2, 3)
