"""The listener dead-letter reads and marks of the restore job: the same tests on the fake and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kafkaguard.consumer.dead_letters import dead_letter_row
from kafkaguard.consumer.records import Record
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.restore_decision import RestoreDecision
from tests.contract.conftest_helpers import make_store


@pytest.fixture(params=["fake", "postgres", "mariadb", "mongo"])
def store(request: pytest.FixtureRequest) -> Iterator[ConsumerStore]:
    yield from make_store(request)


def _row(group: str, offset: int, key: str | None, status: DeadLetterStatus = DeadLetterStatus.PENDING,
         type_: str | None = "t") -> dict[str, Any]:  # fmt: skip
    rec = Record("t", 0, offset, key.encode() if key else None, b"{}", [("h", b"v")])
    row = dead_letter_row(
        group, rec, reason="handler_error", event=None, exc=ValueError("x"), attempts=1, status=status
    )
    return {**row, "type": type_}


def _insert(store: ConsumerStore, *rows: dict[str, Any]) -> list[int]:
    with store.transaction() as tx:
        ids = [tx.insert_dead_letter(r) for r in rows]
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


def test_due_keys_filter_by_group_before_the_limit_heads_first(store: ConsumerStore) -> None:
    _insert(store, *(_row("busy", n, f"b{n}") for n in range(5)))
    _insert(store, _row("quiet", 10, "q2"), _row("quiet", 11, "q1"), _row("quiet", 12, "q1"), _row("quiet", 13, None))
    _insert(store, _row("quiet", 14, "parked-head", DeadLetterStatus.PARKED))
    assert store.dead_letters.due_keys(limit=2, group="quiet") == [("quiet", "q2"), ("quiet", "q1")]
    assert store.dead_letters.due_keys(limit=3) == [("busy", "b0"), ("busy", "b1"), ("busy", "b2")]
    assert store.dead_letters.groups_with_open_records() == ["busy", "quiet"]
    assert store.dead_letters.open_types_by_key("quiet", ["q1", "nope"]) == {"q1": {"t"}}


def test_marks_restore_or_back_off_and_keep_history(store: ConsumerStore) -> None:
    head, behind = _insert(store, _row("g", 1, "k"), _row("g", 2, "k", DeadLetterStatus.PARKED))
    later = datetime.now(UTC) + timedelta(hours=1)
    with store.transaction() as tx:
        assert [r.id for r in tx.open_records("g", "k")] == [head, behind]
        tx.mark(head, RestoreDecision(DeadLetterStatus.PENDING, 2, later, {"what": "restore_failed", "attempt": 2},
                                   error_class="ValueError", error_message="x"))  # fmt: skip
    assert store.dead_letters.due_keys(group="g") == []  # not due before its next attempt
    with store.transaction() as tx:
        tx.mark(head, RestoreDecision(DeadLetterStatus.RESTORED, 3, later, {"what": "restored"}, restored_by="restore"))
        assert [r.id for r in tx.open_records("g", "k")] == [behind]
        assert tx.open_record(head) == [] and [r.id for r in tx.open_record(behind)] == [behind]
    got = store.dead_letters.get(head)
    assert got is not None and got.status == "restored" and got.attempts == 3
    assert store.dead_letters.get(10**9) is None


def test_a_record_keeps_the_message_bytes(store: ConsumerStore) -> None:
    (i,) = _insert(store, _row("g", 7, "k"))
    got = store.dead_letters.get(i)
    assert got is not None
    assert (got.topic, got.partition, got.offset, got.key, got.raw_key, got.raw_value) == ("t", 0, 7, "k", b"k", b"{}")
    assert got.raw_headers is not None and got.headers == {"h": "v"}
