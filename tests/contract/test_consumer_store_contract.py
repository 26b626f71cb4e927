"""The consumer store port: the same tests on the in-memory fake and on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kafkaguard.consumer.dead_letters import dead_letter_row
from kafkaguard.consumer.records import Record
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.stores.inbox import ConsumerStore, EventStart, Prior
from tests.contract.conftest_helpers import make_store

G = "contract-group"


@pytest.fixture(params=["fake", "postgres", "mariadb", "mongo"])
def store(request: pytest.FixtureRequest) -> Iterator[ConsumerStore]:
    yield from make_store(request)


def _inbox(event_id: uuid.UUID, key: str = "k", digest: bytes | None = b"h" * 32) -> dict[str, Any]:
    return {"consumer_group": G, "event_id": event_id, "type": "t", "key": key, "topic": "t", "partition": 0,
            "offset": 1, "content_hash": digest}  # fmt: skip


def _dead_letter(
    offset: int, key: str | None = "k", status: DeadLetterStatus = DeadLetterStatus.PENDING
) -> dict[str, Any]:
    rec = Record("t", 0, offset, key.encode() if key else None, b"{}", [("h", b"v")])
    return dead_letter_row(G, rec, reason="handler_error", event=None, exc=ValueError("x"), attempts=1, status=status)


def test_inbox_rows_commit_and_dedupe(store: ConsumerStore) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    with store.transaction() as tx:
        assert tx.prior(G, a) is None
        tx.insert_inbox(_inbox(a))
    with store.transaction() as tx:
        prior = tx.prior(G, a)
        assert prior is not None and prior.content_hash == b"h" * 32 and prior.topic == "t"
        assert tx.insert_inbox_batch(G, [_inbox(a), _inbox(b, digest=None)]) == {b}
        assert tx.hashes(G, [a, b, uuid.uuid4()]) == {a: b"h" * 32, b: None}
    with store.transaction() as tx:
        assert tx.prior("another group", a) is None


def test_a_transaction_that_raises_leaves_nothing(store: ConsumerStore) -> None:
    a = uuid.uuid4()
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_inbox(_inbox(a))
        assert tx.insert_dead_letter(_dead_letter(1)) is not None
        raise RuntimeError("handler failed")
    with store.transaction() as tx:
        assert tx.prior(G, a) is None and not tx.is_blocked(G, "k")


def test_a_savepoint_undoes_only_its_own_changes(store: ConsumerStore) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    with store.transaction() as tx:
        tx.insert_inbox(_inbox(a))
        with pytest.raises(RuntimeError), tx.savepoint():
            tx.insert_inbox(_inbox(b))
            raise RuntimeError("row failed")
    with store.transaction() as tx:
        assert tx.prior(G, a) is not None and tx.prior(G, b) is None


def test_open_dead_letters_block_their_key_and_a_position_is_stored_once(store: ConsumerStore) -> None:
    with store.transaction() as tx:
        first = tx.insert_dead_letter(_dead_letter(5, "k1"))
        assert first is not None
        assert tx.insert_dead_letter(_dead_letter(5, "k1")) is None  # a redelivery
        tx.insert_dead_letter(_dead_letter(6, "k1", DeadLetterStatus.PARKED))
    with store.transaction() as tx:
        assert tx.is_blocked(G, "k1") and not tx.is_blocked(G, "k2")
        assert tx.any_blocked(G, ["k2", "k1"]) and not tx.any_blocked(G, ["k2", "k3"])
        assert [(r.offset, r.status) for r in tx.open_records(G, "k1")] == [(5, "pending"), (6, "parked")]


def test_key_locks_serialise_two_transactions(store: ConsumerStore) -> None:
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def first() -> None:
        with store.transaction() as tx:
            tx.lock_keys(G, ["a", "b"])
            held.set()
            release.wait(5)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    assert held.wait(5)
    second = threading.Thread(target=lambda: _lock_then(store, order))
    second.start()
    second.join(0.3)
    assert second.is_alive() and order == []  # waits for the first transaction's lock
    release.set()
    t.join(5)
    second.join(5)
    assert order == ["first done", "second locked"]


def _lock_then(store: ConsumerStore, order: list[str]) -> None:
    with store.transaction() as tx:
        tx.lock_key(G, "b")
        order.append("second locked")


def test_the_store_answers_and_a_statement_error_is_no_outage(store: ConsumerStore) -> None:
    assert store.store_alive()
    assert not store.is_connection_error(ValueError("bad data"))


def test_an_async_transaction_runs_the_sync_steps_and_its_savepoints(store: ConsumerStore) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()

    async def work(on: ConsumerStore) -> None:
        async with on.async_transaction() as atx:
            await atx.run_sync(lambda tx: tx.insert_inbox(_inbox(a)))
            with pytest.raises(RuntimeError):
                async with atx.savepoint():
                    await atx.run_sync(lambda tx: tx.insert_inbox(_inbox(b)))
                    raise RuntimeError("async handler failed")

    store.run_async(work)
    with store.transaction() as tx:
        assert tx.prior(G, a) is not None and tx.prior(G, b) is None


def _row(event_id: uuid.UUID, digest: bytes | None = b"h" * 32, offset: int = 1) -> dict[str, Any]:
    return {**_inbox(event_id, digest=digest), "offset": offset}


def test_begin_event_writes_a_new_events_inbox_row(store: ConsumerStore) -> None:
    a = uuid.uuid4()
    with store.transaction() as tx:
        assert tx.begin_event(G, "k", _row(a), check_blocked=True) == EventStart()
    with store.transaction() as tx:
        assert tx.prior(G, a) == Prior(b"h" * 32, "t", 0, 1)


def test_begin_event_returns_the_prior_row_of_a_known_id_and_writes_nothing(store: ConsumerStore) -> None:
    a, old = uuid.uuid4(), uuid.uuid4()
    with store.transaction() as tx:
        tx.begin_event(G, "k", _row(a), check_blocked=True)
        tx.insert_inbox(_row(old, digest=None))
    with store.transaction() as tx:
        # same content (the caller's duplicate) or other content (its id conflict): the stored row either way
        start = tx.begin_event(G, "k", _row(a, digest=b"o" * 32, offset=9), check_blocked=True)
        assert start == EventStart(prior=Prior(b"h" * 32, "t", 0, 1))
        assert tx.begin_event(G, "k", _row(old), check_blocked=True) == EventStart(prior=Prior(None, "t", 0, 1))
        tx.insert_dead_letter(_dead_letter(3, "k"))
        # a known id is answered before the blocked check (a redelivery of an applied event stays a duplicate)
        assert tx.begin_event(G, "k", _row(a), check_blocked=True).prior is not None
    with store.transaction() as tx:
        assert tx.prior(G, a) == Prior(b"h" * 32, "t", 0, 1)


def test_begin_event_on_a_blocked_key_writes_nothing_unless_told_not_to_check(store: ConsumerStore) -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with store.transaction() as tx:
        tx.insert_dead_letter(_dead_letter(3, "k"))
    with store.transaction() as tx:
        assert tx.begin_event(G, "k", _row(a), check_blocked=True) == EventStart(blocked=True)
        assert tx.begin_event(G, "k", None, check_blocked=True) == EventStart(blocked=True)  # no inbox row asked
        assert tx.begin_event(G, "other", _row(c), check_blocked=True) == EventStart()
        # the restore job (park=False) applies the key's own dead letters: no blocked check
        assert tx.begin_event(G, "k", _row(b), check_blocked=False) == EventStart()
        assert tx.begin_event(G, "k", None, check_blocked=False) == EventStart()
    with store.transaction() as tx:
        assert tx.prior(G, a) is None and tx.prior(G, b) is not None and tx.prior(G, c) is not None


def test_begin_event_holds_the_key_lock_and_sees_what_its_previous_holder_committed(store: ConsumerStore) -> None:
    """The blocked check runs after the lock is granted: a dead letter committed by the transaction
    that held the key's lock is seen (per-key order), whether the second transaction reached the lock
    while it was held (the case a single SQL statement would get wrong) or after."""
    holding, attempted = threading.Event(), threading.Event()
    seen: list[EventStart] = []

    def second() -> None:
        holding.wait(10)
        with store.transaction() as tx:
            attempted.set()
            seen.append(tx.begin_event(G, "k", _row(uuid.uuid4()), check_blocked=True))

    t = threading.Thread(target=second)
    t.start()
    with store.transaction() as tx:
        tx.lock_key(G, "k")
        holding.set()
        attempted.wait(10)
        assert not seen  # still waiting for the lock
        tx.insert_dead_letter(_dead_letter(3, "k"))
    t.join(10)
    assert seen == [EventStart(blocked=True)]
