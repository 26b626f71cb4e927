"""The listener restore job over the in-memory store: restored heads release parked records in
order, failures follow restore/outcome (backoff, then ``failed``), due keys per group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kafkaguard.consumer import HandlerRegistry, Outcome
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.listener_job import ListenerRestoreJob
from kafkaguard.testing import MemoryConsumerStore
from tests.unit.consumer_fakes import GROUP, applier, record, settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _setup(broken: set[str]) -> tuple[MemoryConsumerStore, list[tuple[str, int]], HandlerRegistry, Clock]:
    clock = Clock()
    store, seen = MemoryConsumerStore(clock=clock), []
    reg = HandlerRegistry()

    @reg.handler("t.made")
    def made(event: Event, ctx: Any) -> None:
        if event.key in broken:
            raise ValueError(f"{event.key} is broken")
        seen.append((event.key, event.payload["n"]))

    return store, seen, reg, clock


def _job(store: MemoryConsumerStore, reg: HandlerRegistry, attempts: int = 2) -> ListenerRestoreJob:
    policy = RetryPolicy(max_attempts=attempts, backoff=Fixed(seconds=60))
    return ListenerRestoreJob(store, reg, settings(), policy=policy, clock=store.clock)


def test_restoring_the_head_releases_the_parked_records_in_order() -> None:
    broken = {"k"}
    store, seen, reg, _ = _setup(broken)
    a = applier(store, reg)
    assert [a.process(record(Event(type="t.made", key="k", payload={"n": n}), n)) for n in range(3)] == [
        Outcome.DEAD_LETTERED, Outcome.PARKED, Outcome.PARKED,
    ]  # fmt: skip
    broken.clear()
    report = _job(store, reg).run_once(GROUP)
    assert seen == [("k", 0), ("k", 1), ("k", 2)]
    assert report.restored == 3 and report.failed == report.retried == 0
    rows = store.dead_letters_of(GROUP)
    assert [r["status"] for r in rows] == ["restored"] * 3
    assert rows[0]["history"][-1]["what"] == "restored" and rows[0]["history"][-1]["by"] == "handler"
    assert a.process(record(Event(type="t.made", key="k", payload={"n": 3}), 3)) is Outcome.APPLIED  # unblocked


def test_a_failure_backs_off_then_gives_up_and_the_records_behind_it_stay() -> None:
    store, seen, reg, clock = _setup({"k"})
    a = applier(store, reg)
    for n in range(2):
        a.process(record(Event(type="t.made", key="k", payload={"n": n}), n))
    job = _job(store, reg, attempts=3)  # the consumer's dead letter counted 1 attempt
    first = job.run_once(GROUP)
    head, parked = store.dead_letters_of(GROUP)
    assert first.retried == 1 and head["status"] == "pending" and head["attempts"] == 2
    assert head["next_attempt_at"] == clock.now + timedelta(seconds=60)
    assert head["history"][-1]["what"] == "restore_failed" and parked["status"] == "parked"
    assert job.run_once(GROUP).restored == 0 and store.dead_letters_of(GROUP)[0]["attempts"] == 2  # not due yet
    clock.now += timedelta(seconds=61)
    final = job.run_once(GROUP)
    head, parked = store.dead_letters_of(GROUP)
    assert final.failed == 1 and head["status"] == "failed" and head["attempts"] == 3
    assert parked["status"] == "parked" and seen == []
    assert store.due_keys(group=GROUP) == []  # a failed head waits for an operator


def test_due_keys_are_filtered_by_group_before_the_limit_and_come_heads_first() -> None:
    store, _, reg, _ = _setup({"a", "b", "c", *(f"o{n}" for n in range(5))})
    other = applier(store, reg, group_id="other")
    for n in range(5):
        other.process(record(Event(type="t.made", key=f"o{n}", payload={"n": n}), n, topic="o"))
    mine = applier(store, reg)
    for n, key in enumerate(["b", "a", "c"]):
        mine.process(record(Event(type="t.made", key=key, payload={"n": n}), n))
    assert store.due_keys(limit=2, group=GROUP) == [(GROUP, "b"), (GROUP, "a")]
    assert [g for g, _ in store.due_keys(limit=3)] == ["other"] * 3


def test_a_key_with_a_type_the_registry_cannot_apply_is_left_alone() -> None:
    store, _, reg, _ = _setup(set())
    a = applier(store, reg)
    a.process(record(Event(type="t.unknown", key="k", payload={}), 0))
    report = _job(store, reg).run_once(GROUP)
    assert report.unhandled_keys == 1 and report.unhandled_types == {"t.unknown": "no handler"}
    assert store.dead_letters_of(GROUP)[0]["attempts"] == 1  # untouched


def test_a_duplicate_in_the_inbox_is_marked_restored_without_running_the_handler_again() -> None:
    broken: set[str] = set()
    store, seen, reg, _ = _setup(broken)
    a = applier(store, reg)
    ev = Event(type="t.made", key="k", payload={"n": 1})
    a.process(record(ev, 0))
    broken.add("k")
    a.process(record(Event(type="t.made", key="k", payload={"n": 2}), 1))  # dead letter
    result = _job(store, reg).process_record(store.dead_letters_of(GROUP)[0]["id"])
    assert result.failed_id is not None and not result.restored  # still broken: stopped there
    broken.clear()
    assert _job(store, reg).process_key(GROUP, "k").restored == [store.dead_letters_of(GROUP)[0]["id"]]
    assert seen == [("k", 1), ("k", 2)]


def test_async_handlers_are_restored_in_the_same_order() -> None:
    clock = Clock()
    store, seen = MemoryConsumerStore(clock=clock), []
    reg, broken = HandlerRegistry(), {"k"}

    @reg.handler("t.made")
    async def made(event: Event, ctx: Any) -> None:
        if event.key in broken:
            raise ValueError("broken")
        seen.append(event.payload["n"])

    a = applier(store, reg)
    try:
        for n in range(3):
            a.process(record(Event(type="t.made", key="k", payload={"n": n}), n))
    finally:
        a.close()
    broken.clear()
    assert _job(store, reg).run_once(GROUP).restored == 3
    assert seen == [0, 1, 2]
