"""``kafkaguard.testing.Pipeline``: the real publisher, relay, consumer and restore job over the fakes,
driving a user's handlers on SQLite — effects, duplicates, retries, dead letters, parking, restore,
publisher-side rejections, sync, async and batch handlers. No Kafka, no PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from kafkaguard import (
    BatchContext,
    ConsumerSettings,
    Event,
    HandlerContext,
    HandlerRegistry,
    KafkaguardSettings,
    Outcome,
    PublishMode,
    PublishOutcome,
    PublishSettings,
)
from kafkaguard import headers as H
from kafkaguard.testing import Pipeline

TOPIC = "outbox.event.order"
metadata = MetaData()
effects = Table("effects", metadata, Column("n", Integer, primary_key=True), Column("key", String))


def event(key: str, n: int) -> Event:
    return Event(type="order.created", key=key, aggregate_type="order", payload={"n": n})


@pytest.fixture
def engine() -> Iterator[Engine]:
    db = create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(db)
    yield db
    db.dispose()


def rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(effects.c.n).order_by(effects.c.n)).scalars())


class Switch:
    """A handler's failure, on until switched off: raises ``error`` for the events of ``keys``."""

    def __init__(self, error: type[Exception], *keys: str, times: int | None = None) -> None:
        self.error, self.keys, self.times, self.calls = error, set(keys), times, 0

    def check(self, e: Event) -> None:
        if e.key in self.keys and (self.times is None or self.calls < self.times):
            self.calls += 1
            raise self.error(f"{e.key} refused")


def sync_registry(switch: Switch | None = None) -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("order.created")
    def apply(e: Event, ctx: HandlerContext[Session]) -> None:
        if switch is not None:
            switch.check(e)
        ctx.session.execute(insert(effects).values(n=e.payload["n"], key=e.key))

    return registry


def kit_of(registry: HandlerRegistry, engine: Engine | None, **settings: Any) -> Pipeline:
    return Pipeline(
        registry,
        group="orders",
        sessions=sessionmaker(engine) if engine is not None else None,
        settings=KafkaguardSettings(**settings),
    )


def test_an_event_is_applied_once_however_often_kafka_delivers_it(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine)
    assert kit.publish(event("o-1", 1), event("o-2", 2)) == [PublishOutcome.OUTBOX] * 2
    assert kit.deliver() == [Outcome.APPLIED, Outcome.APPLIED]
    assert kit.outbox.backlog() == 0 and [m.key for m in kit.messages(TOPIC)] == [b"o-1", b"o-2"]
    assert kit.redeliver() == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert kit.deliver() == [], "nothing new"
    assert rows(engine) == [1, 2]


def test_a_rolled_back_business_transaction_publishes_nothing(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine)
    with Session(engine) as session:
        kit.publisher.publish(session, event("o-1", 1))
        session.rollback()
    with Session(engine) as session, session.begin():
        kit.publisher.publish(session, event("o-2", 2))
    assert kit.deliver() == [Outcome.APPLIED]
    assert rows(engine) == [2]


def test_a_retriable_failure_is_retried_without_waiting_then_dead_lettered(engine: Engine) -> None:
    kit = kit_of(sync_registry(Switch(TimeoutError, "o-1")), engine)
    kit.publish(event("o-1", 1))
    assert kit.deliver() == [Outcome.DEAD_LETTERED]
    [dead] = kit.dead_letters()
    assert (dead["status"], dead["attempts"], dead["error_class"]) == ("pending", 3, "TimeoutError")
    assert len(kit.retry_waits) == 2 and all(w > 0 for w in kit.retry_waits), "asked for, not waited"


def test_a_transient_failure_that_passes_is_applied(engine: Engine) -> None:
    kit = kit_of(sync_registry(Switch(TimeoutError, "o-1", times=2)), engine)
    kit.publish(event("o-1", 1))
    assert kit.deliver() == [Outcome.APPLIED]
    assert rows(engine) == [1] and kit.dead_letters() == []


def test_a_permanent_failure_is_dead_lettered_at_once(engine: Engine) -> None:
    kit = kit_of(sync_registry(Switch(ValueError, "o-1")), engine)
    kit.publish(event("o-1", 1))
    assert kit.deliver() == [Outcome.DEAD_LETTERED]
    [dead] = kit.dead_letters(key="o-1")
    assert dead["attempts"] == 1 and kit.retry_waits == []


def test_later_events_of_a_dead_lettered_key_park_and_restore_in_order(engine: Engine) -> None:
    switch = Switch(ValueError, "o-1")
    kit = kit_of(sync_registry(switch), engine)
    kit.publish(event("o-1", 1), event("o-2", 2), event("o-1", 3), event("o-1", 4))
    assert kit.deliver() == [Outcome.DEAD_LETTERED, Outcome.APPLIED, Outcome.PARKED, Outcome.PARKED]
    assert [p["offset"] for p in kit.parked("o-1")] == [2, 3]
    assert rows(engine) == [2], "other keys keep flowing"

    report = kit.restore()  # still failing: the key stays as it was, its head's attempts counted
    assert (report.restored, report.retried) == (0, 1)
    assert rows(engine) == [2] and len(kit.parked("o-1")) == 2

    switch.keys.clear()
    assert kit.restore("o-1").restored == 3
    assert rows(engine) == [1, 2, 3, 4]
    assert {d["status"] for d in kit.dead_letters()} == {"restored"}
    kit.publish(event("o-1", 5))
    assert kit.deliver() == [Outcome.APPLIED], "the key is free again"


def test_a_rejected_event_becomes_a_publisher_dead_letter_and_holds_its_key(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine)
    first = event("o-1", 1)
    kit.producer.reject(TOPIC, where=lambda m: m.header(H.EVENT_ID) == str(first.event_id).encode())
    kit.publish(first)
    assert kit.deliver() == []
    kit.publish(event("o-1", 2), event("o-2", 3))
    assert kit.deliver() == [Outcome.APPLIED]
    assert rows(engine) == [3]
    [dead] = kit.publisher_dead_letters()
    assert (dead["event_id"], dead["source"], dead["status"]) == (first.event_id, "outbox", "pending")
    assert kit.outbox.backlog() == 1, "o-1's next event waits behind its dead letter"


def test_direct_mode_delivers_now_and_dead_letters_a_rejection(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine, publish=PublishSettings(default_mode=PublishMode.DIRECT))
    kit.producer.reject(TOPIC, times=1)
    assert kit.publish(event("o-1", 1), event("o-1", 2), event("o-2", 3)) == [
        PublishOutcome.DEAD_LETTERED,
        PublishOutcome.DEAD_LETTERED,  # held behind the first one's dead letter
        PublishOutcome.PUBLISHED,
    ]
    assert [r["source"] for r in kit.publisher_dead_letters(key="o-1")] == ["direct", "direct"]
    assert kit.deliver() == [Outcome.APPLIED] and rows(engine) == [3]


def test_a_store_outage_pauses_the_consumer_and_nothing_is_lost(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine)
    kit.publish(event("o-1", 1), event("o-2", 2))
    kit.store.down = True
    assert kit.deliver() == []
    assert kit.worker.stats["store_outages"] == 1 and kit.dead_letters() == []
    kit.store.down = False
    assert kit.deliver() == [Outcome.APPLIED, Outcome.APPLIED]
    assert rows(engine) == [1, 2]


def test_a_plain_clients_message_is_consumed_and_bad_bytes_are_dead_lettered(engine: Engine) -> None:
    kit = kit_of(sync_registry(), engine, consumer=ConsumerSettings(topics=["plain"]))
    e = event("o-1", 1)
    kit.send("plain", b"not json", key="k")
    kit.send("plain", e.payload, key=e.key, headers=dict(e.kafka_headers()))
    assert kit.deliver() == [Outcome.DEAD_LETTERED, Outcome.APPLIED]
    assert kit.dead_letters()[0]["raw_value"] == b"not json"


def test_an_async_handler_writes_with_an_async_session() -> None:
    registry = HandlerRegistry()

    @registry.handler("order.created")
    async def apply(e: Event, ctx: HandlerContext[AsyncSession]) -> None:
        if e.payload["n"] == 13:
            raise ValueError("unlucky")
        await ctx.session.execute(insert(effects).values(n=e.payload["n"], key=e.key))

    db = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)

    async def run(statement: Any = None) -> list[int]:
        async with db.begin() as conn:
            await conn.run_sync(metadata.create_all)
            return list((await conn.execute(select(effects.c.n).order_by(effects.c.n))).scalars())

    asyncio.run(run())
    kit = Pipeline(registry, group="orders", sessions=async_sessionmaker(db), settings=KafkaguardSettings())
    kit.publish(event("o-1", 1), event("o-2", 13), event("o-2", 2))
    assert kit.deliver() == [Outcome.APPLIED, Outcome.DEAD_LETTERED, Outcome.PARKED]
    assert kit.redeliver()[0] is Outcome.DUPLICATE
    assert asyncio.run(run()) == [1], "the failed event's writes were rolled back, the parked one waits"
    asyncio.run(db.dispose())


def test_deliver_async_serves_an_async_test() -> None:
    registry = HandlerRegistry()
    seen: list[int] = []

    @registry.handler("order.created")
    async def apply(e: Event, ctx: HandlerContext[Any]) -> None:
        seen.append(e.payload["n"])

    async def a_test() -> list[Outcome]:
        kit = Pipeline(registry, group="orders", settings=KafkaguardSettings())
        kit.publish(event("o-1", 1))
        return await kit.deliver_async()

    assert asyncio.run(a_test()) == [Outcome.APPLIED] and seen == [1]


def test_a_batch_handler_applies_a_chunk_in_one_call(engine: Engine) -> None:
    registry = HandlerRegistry()
    calls: list[int] = []

    @registry.batch_handler("order.created")
    def apply_many(events: list[Event], ctx: BatchContext[Session]) -> None:
        calls.append(len(events))
        ctx.session.execute(insert(effects), [{"n": e.payload["n"], "key": e.key} for e in events])

    kit = kit_of(registry, engine, consumer=ConsumerSettings(batch_size=10))
    kit.publish(*(event(f"o-{n}", n) for n in range(1, 6)))
    assert kit.deliver() == [Outcome.APPLIED] * 5
    assert calls == [5] and kit.worker.batches["applied"] == 1
    assert kit.redeliver() == [Outcome.DUPLICATE] * 5 and rows(engine) == [1, 2, 3, 4, 5]


def test_the_pipeline_is_a_context_manager(engine: Engine) -> None:
    with kit_of(sync_registry(), engine) as kit:
        kit.publish(event("o-1", 1))
        assert kit.deliver() == [Outcome.APPLIED]
    assert kit.delivered()[0][0].key == b"o-1"
