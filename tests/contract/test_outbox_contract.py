"""The outbox port's contract: the same tests against ``MemoryOutbox`` and ``PostgresOutbox`` (real PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg
import pytest
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.errors import EventRejectedError, KafkaUnavailableError
from kafkaguard.stores.outbox import DeadLetter, OutboxStore, PostgresOutbox, add_events
from kafkaguard.stores.publisher_dead_letters import add_dead_letter, outbox_params
from kafkaguard.testing import MemoryOutbox
from kafkaguard.testing.fixtures import TestDatabase

ALL = list(range(64))


class Harness(Protocol):
    def write(self, events: Sequence[Event]) -> None: ...
    def instance(self) -> OutboxStore: ...
    def dead_letter(self, event: Event) -> None: ...
    def dead_letters(self) -> list[dict[str, Any]]: ...
    def age_published(self, by: timedelta) -> None: ...


class FakeHarness:
    def __init__(self) -> None:
        self.offset = timedelta()
        self.root = MemoryOutbox(clock=lambda: datetime.now(UTC) + self.offset)
        self.handed = 0

    def write(self, events: Sequence[Event]) -> None:
        self.root.add(None, events)

    def instance(self) -> OutboxStore:
        store = self.root if self.handed == 0 else self.root.another_instance()
        self.handed += 1
        store.connect()
        return store

    def dead_letter(self, event: Event) -> None:
        self.root.dead_letters.add(
            None, event, topic="t", source=PublishSource.DIRECT, error=KafkaUnavailableError("x")
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        return [{**r, "event_id": str(r["event_id"])} for r in self.root.dead_letters.records]

    def age_published(self, by: timedelta) -> None:
        self.offset += by


class PostgresHarness:
    def __init__(self, db: TestDatabase) -> None:
        self.db = db
        self.engine = sync_engine(db.server.url(), schema=db.schema)
        self.stores: list[PostgresOutbox] = []

    def write(self, events: Sequence[Event]) -> None:
        with Session(self.engine) as session, session.begin():
            add_events(session, events)

    def instance(self) -> OutboxStore:
        store = PostgresOutbox(self.db.conninfo, schema=self.db.schema)
        store.connect()
        self.stores.append(store)
        return store

    def dead_letter(self, event: Event) -> None:
        with Session(self.engine) as session, session.begin():
            add_dead_letter(session, event, topic="t", source=PublishSource.DIRECT, error=KafkaUnavailableError("x"))

    def dead_letters(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.db.conninfo) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute("SELECT *, event_id::text AS event_id FROM kafka_publisher_dead_letters ORDER BY id")
            return list(cur.fetchall())

    def age_published(self, by: timedelta) -> None:
        with psycopg.connect(self.db.conninfo) as conn:
            conn.execute("UPDATE outbox SET published_at = published_at - %s WHERE published_at IS NOT NULL", (by,))

    def close(self) -> None:
        for store in self.stores:
            store.close()
        self.engine.dispose()


@pytest.fixture(params=["fake", "postgres"])
def outbox(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "fake":
        yield FakeHarness()
        return
    harness = PostgresHarness(request.getfixturevalue("migrated_database"))
    try:
        yield harness
    finally:
        harness.close()


def _events(*keys: str) -> list[Event]:
    return [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate(keys)]


def _n(row: Any) -> int:
    return int(json.loads(row.payload_json)["n"])


def test_a_claim_returns_visible_rows_in_write_order_except_those_in_flight(outbox: Harness) -> None:
    for event in _events("a", "b", "a", "b", "a"):  # one transaction each
        outbox.write([event])
    store = outbox.instance()
    assert sorted(store.try_lock_shards(ALL, 64)) == ALL
    rows = store.claim(ALL, 100, skip_blocked_keys=True)
    assert [_n(r) for r in rows] == [0, 1, 2, 3, 4]
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert [_n(r) for r in store.claim(ALL, 2, skip_blocked_keys=True)] == [0, 1]
    in_flight = [rows[0].id, rows[1].id]
    assert [_n(r) for r in store.claim(ALL, 100, skip_blocked_keys=True, in_flight=in_flight)] == [2, 3, 4]
    assert rows[0].aggregateid == "a" and rows[0].type == "order.created" and rows[0].occurred_at is not None
    assert store.backlog() == 5


def test_two_instances_never_share_a_shard_or_a_key(outbox: Harness) -> None:
    first, second = outbox.instance(), outbox.instance()
    assert first.live_instances() == 2
    mine = first.try_lock_shards(ALL, 40)
    theirs = second.try_lock_shards(ALL, 64)
    assert len(mine) == 40 and len(theirs) == 24 and set(mine).isdisjoint(theirs)
    outbox.write(_events(*[f"key-{i}" for i in range(60)]))
    a = {r.aggregateid for r in first.claim(mine, 1000, skip_blocked_keys=False)}
    b = {r.aggregateid for r in second.claim(theirs, 1000, skip_blocked_keys=False)}
    assert a.isdisjoint(b) and len(a | b) == 60
    first.unlock_shards(mine[:10])
    free = [s for s in ALL if s not in theirs]  # callers never ask for shards they hold (see S.to_try)
    assert sorted(second.try_lock_shards(free, 64)) == sorted(mine[:10])
    first.close()  # a closed (or dead) instance's shards are free once its session ends (PostgreSQL: soon after)
    taken: set[int] = set()
    deadline = time.monotonic() + 10
    while taken != set(mine[10:]) and time.monotonic() < deadline:
        taken.update(second.try_lock_shards([s for s in mine[10:] if s not in taken], 64))
    assert taken == set(mine[10:])


def test_a_key_with_an_open_dead_letter_is_held(outbox: Harness) -> None:
    outbox.write(_events("a", "b"))
    outbox.dead_letter(Event(type="order.created", key="a", payload={}))
    store = outbox.instance()
    store.try_lock_shards(ALL, 64)
    assert [r.aggregateid for r in store.claim(ALL, 10, skip_blocked_keys=True)] == ["b"]
    assert [r.aggregateid for r in store.claim(ALL, 10, skip_blocked_keys=False)] == ["a", "b"]


def test_settle_removes_or_marks_the_rows_it_is_given(outbox: Harness) -> None:
    outbox.write(_events("a", "b", "c"))
    store = outbox.instance()
    store.try_lock_shards(ALL, 64)
    rows = store.claim(ALL, 10, skip_blocked_keys=True)
    assert store.settle([], [rows[0].id], delete=True) == 0
    assert store.settle([], [rows[1].id], delete=False) == 0
    assert [r.id for r in store.claim(ALL, 10, skip_blocked_keys=True)] == [rows[2].id]
    assert store.backlog() == 1


def test_a_dead_letter_is_copied_from_its_row_once(outbox: Harness) -> None:
    [event] = _events("a")
    outbox.write([event])
    store = outbox.instance()
    store.try_lock_shards(ALL, 64)
    [row] = store.claim(ALL, 10, skip_blocked_keys=True)
    letter = DeadLetter(row.id, outbox_params(row.id, topic="orders", error=EventRejectedError("too large")))
    store.settle([letter], [row.id], delete=False)
    store.settle([letter], [row.id], delete=False)  # settled twice (a crash before the commit): one record
    [record] = outbox.dead_letters()
    assert record["event_id"] == str(event.event_id) and record["key"] == "a" and record["topic"] == "orders"
    assert (record["status"], record["source"], record["attempts"]) == ("pending", "outbox", 1)
    assert record["type"] == "order.created" and record["aggregate_type"] == "order"
    assert record["payload"] == {"n": 0}
    assert record["last_error_class"] == "kafkaguard.errors.EventRejectedError"
    assert record["history"][0]["attempts"] == 1 and record["history"][0]["what"] == "dead_lettered"
    assert store.backlog() == 0
    assert store.claim(ALL, 10, skip_blocked_keys=True) == []  # and the key is held now
    outbox.write([Event(type="order.created", key="a", payload={})])
    assert store.claim(ALL, 10, skip_blocked_keys=True) == []


def test_cleanup_deletes_old_marked_rows_in_bounded_batches(outbox: Harness) -> None:
    outbox.write(_events("a", "b", "c", "d"))
    store = outbox.instance()
    store.try_lock_shards(ALL, 64)
    rows = store.claim(ALL, 10, skip_blocked_keys=True)
    store.settle([], [r.id for r in rows[:3]], delete=False)
    assert store.cleanup_published(3600) == 0  # marked just now
    outbox.age_published(timedelta(hours=2))
    assert store.cleanup_published(3600, limit=2) == 2
    assert store.cleanup_published(3600, limit=2) == 1
    assert store.cleanup_published(3600) == 0
    assert store.backlog() == 1  # the unpublished row is never cleaned up


def test_a_write_wakes_a_waiting_instance(outbox: Harness) -> None:
    store = outbox.instance()
    store.wait_for_work(0.01)  # forget anything announced before
    outbox.write(_events("a"))
    assert store.wait_for_work(5.0) is True
