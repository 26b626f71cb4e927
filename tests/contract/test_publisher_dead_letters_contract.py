"""The publisher dead-letter store's contract: ``MemoryPublisherDeadLetters``, the PostgreSQL and
MariaDB adapters and the MongoDB one (on FerretDB)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pytest
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaUnavailableError
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.outcome import after_failure, after_success
from kafkaguard.stores.by_database import publisher_dead_letters_for
from kafkaguard.stores.publisher_dead_letters import PublisherDeadLetterStore
from kafkaguard.testing import MemoryPublisherDeadLetters


class Harness(Protocol):
    store: PublisherDeadLetterStore

    def add(self, event: Event) -> None: ...


class FakeHarness:
    def __init__(self) -> None:
        self.memory = MemoryPublisherDeadLetters()
        self.store: PublisherDeadLetterStore = self.memory

    def add(self, event: Event) -> None:
        self.memory.add(None, event, topic="t", source=PublishSource.DIRECT, error=KafkaUnavailableError("down"))


class SqlHarness:
    """The SQL adapter the URL's database gets (PostgreSQL or MariaDB), written in a Session."""

    def __init__(self, url: str, schema: str) -> None:
        self.engine = sync_engine(url, schema=schema)
        self.sql = publisher_dead_letters_for(self.engine)
        self.store: PublisherDeadLetterStore = self.sql

    def add(self, event: Event) -> None:
        with Session(self.engine) as session, session.begin():
            self.sql.add(session, event, topic="t", source=PublishSource.DIRECT, error=KafkaUnavailableError("down"))


class MongoHarness:
    def __init__(self, db: Any) -> None:
        from kafkaguard.stores.mongo_publisher_dead_letters import MongoPublisherDeadLetters

        self.mongo = MongoPublisherDeadLetters(db)
        self.mongo.ensure_indexes()
        self.store: PublisherDeadLetterStore = self.mongo

    def add(self, event: Event) -> None:
        self.mongo.add(None, event, topic="t", source=PublishSource.DIRECT, error=KafkaUnavailableError("down"))


@pytest.fixture(params=["fake", "postgres", "mariadb", "mongo"])
def dead_letters(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "fake":
        yield FakeHarness()
        return
    if request.param == "mongo":
        yield MongoHarness(request.getfixturevalue("mongo_database"))
        return
    if request.param == "mariadb":
        maria = request.getfixturevalue("migrated_mariadb_database")
        harness = SqlHarness(maria.url, maria.schema)
    else:
        db = request.getfixturevalue("migrated_database")
        harness = SqlHarness(db.server.url(), db.schema)
    try:
        yield harness
    finally:
        harness.engine.dispose()


def _event(key: str, n: int = 0) -> Event:
    return Event(type="order.created", key=key, payload={"n": n})


def _records(h: Harness, key: str) -> list[dict[str, Any]]:
    with h.store.hold_key(key) as held:
        assert held is not None
        return held.records


def test_an_event_is_stored_once(dead_letters: Harness) -> None:
    event = _event("a")
    dead_letters.add(event)
    dead_letters.add(event)
    [record] = _records(dead_letters, "a")
    assert (record["status"], record["attempts"], record["topic"], record["source"]) == ("pending", 1, "t", "direct")
    assert record["event_id"] == event.event_id
    assert record["last_error_class"] == "kafkaguard.errors.KafkaUnavailableError"
    assert isinstance(record["payload"], str) and '"n"' in record["payload"]  # JSON text, decoded by the caller


def test_due_heads_are_the_oldest_open_record_of_each_key(dead_letters: Harness) -> None:
    for n, key in enumerate(["a", "b", "a"]):
        dead_letters.add(_event(key, n))
    heads = dead_letters.store.due_heads(10)
    assert [k for _, k in heads] == ["a", "b"]
    assert dead_letters.store.due_heads(1) == heads[:1]
    head_a = heads[0][0]
    with dead_letters.store.hold_key("a") as held:
        assert held is not None and held.records[0]["id"] == head_a
        held.record_outcome(head_a, after_success(1, datetime.now(UTC), "republish"), None)
    assert [k for _, k in dead_letters.store.due_heads(10)] == ["b", "a"]  # a's second record is its head now
    assert len(_records(dead_letters, "a")) == 1  # a restored record is no longer open
    assert dead_letters.store.due_keyless(10) == []


def test_a_key_is_held_by_one_run_at_a_time(dead_letters: Harness) -> None:
    dead_letters.add(_event("a"))
    with dead_letters.store.hold_key("a") as first:
        assert first is not None
        with dead_letters.store.hold_key("a") as second:
            assert second is None
        with dead_letters.store.hold_key("b") as other:
            assert other is not None and other.records == []
    with dead_letters.store.hold_key("a") as again:
        assert again is not None


def test_a_failure_outcome_is_recorded_and_a_failed_head_holds_its_key(dead_letters: Harness) -> None:
    dead_letters.add(_event("a", 0))
    dead_letters.add(_event("a", 1))
    [(head, _)] = dead_letters.store.due_heads(10)
    now = datetime.now(UTC)
    error = KafkaUnavailableError("still down")
    with dead_letters.store.hold_key("a") as held:
        assert held is not None
        outcome = after_failure(1, error, RetryPolicy(max_attempts=5, backoff=Fixed(seconds=600)), now, "republish")
        held.record_outcome(head, outcome, error)
    record = _records(dead_letters, "a")[0]
    assert (record["status"], record["attempts"]) == ("pending", 2)
    assert abs((record["next_attempt_at"] - (now + timedelta(seconds=600))).total_seconds()) < 1
    assert record["last_error_class"] == "kafkaguard.errors.KafkaUnavailableError"
    assert record["last_error_message"] == "still down"
    assert dead_letters.store.due_heads(10) == []  # the head is not due: its key's later record waits
    with dead_letters.store.hold_key("a") as held:
        assert held is not None
        given_up = after_failure(4, error, RetryPolicy(max_attempts=5, backoff=Fixed(seconds=0)), now, "republish")
        held.record_outcome(head, given_up, error)
    records = _records(dead_letters, "a")
    assert [r["status"] for r in records] == ["failed", "pending"]
    assert dead_letters.store.due_heads(10) == []  # parked for an operator, and still holding the key
