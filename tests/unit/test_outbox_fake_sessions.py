"""The fake stores' writers keep the real ones' promise: rows appear when the user's session commits."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaUnavailableError
from kafkaguard.stores.outbox import OutboxWriter, PostgresOutboxWriter
from kafkaguard.testing import MemoryOutbox, MemoryPublisherDeadLetters


def _event(key: str = "k") -> Event:
    return Event(type="order.created", key=key, payload={"n": 1})


def test_outbox_rows_appear_on_commit_and_never_after_a_rollback() -> None:
    engine = create_engine("sqlite://")
    outbox = MemoryOutbox()
    with Session(engine) as session:
        outbox.add(session, [_event("rolled-back")])
        assert outbox.backlog() == 0
        session.rollback()
    with Session(engine) as session:
        outbox.add(session, [_event("committed")])
        assert outbox.backlog() == 0  # not before the commit
        session.commit()
    assert [r["aggregateid"] for r in outbox.rows] == ["committed"]
    with Session(engine) as session:  # the listener of a finished transaction is gone
        session.commit()
    assert outbox.backlog() == 1


def test_dead_letters_appear_on_commit_once_per_event() -> None:
    engine = create_engine("sqlite://")
    store = MemoryPublisherDeadLetters()
    event = _event()
    error = KafkaUnavailableError("down")
    with Session(engine) as session, session.begin():
        store.add(session, event, topic="t", source=PublishSource.DIRECT, error=error)
        store.add(session, event, topic="t", source=PublishSource.DIRECT, error=error)
        assert store.records == []
    assert len(store.records) == 1 and store.open_keys() == {"k"}
    record = store.by_event(event.event_id)
    assert record is not None and record["last_error_class"] == "kafkaguard.errors.KafkaUnavailableError"


def test_the_fake_and_the_real_outbox_writer_are_both_outbox_writers() -> None:
    writers: list[OutboxWriter] = [MemoryOutbox(), PostgresOutboxWriter()]
    assert all(callable(w.add) and callable(w.add_async) for w in writers)


def test_async_session_writes_appear_on_commit() -> None:
    outbox = MemoryOutbox()

    async def write() -> None:
        async with AsyncSession() as session:  # no database: the fake needs only the transaction's events
            await outbox.add_async(session, [_event("async")])
            assert outbox.backlog() == 0
            await session.commit()

    asyncio.run(write())
    assert [r["aggregateid"] for r in outbox.rows] == ["async"]
