"""The Publisher takes its outbox writer and its publisher dead-letter store through its constructor:
with the in-memory ones no statement runs on the caller's session (it only commits or rolls back)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard import Event, KafkaguardSettings, Publisher, PublishMode, PublishOutcome, PublishSettings
from kafkaguard.publisher.background import BackgroundOutcome
from kafkaguard.testing import MemoryOutbox, MemoryProducer, MemoryPublisherDeadLetters

TOPIC = "outbox.event.order"


def publisher(mode: PublishMode, **ports: object) -> Publisher:
    settings = KafkaguardSettings(publish=PublishSettings(default_mode=mode), bootstrap_servers="127.0.0.1:9")
    return Publisher(settings, producer=ports.pop("producer", MemoryProducer()), **ports)  # type: ignore[arg-type]


def test_outbox_mode_writes_to_the_given_outbox_at_the_commit() -> None:
    outbox = MemoryOutbox()
    pub = publisher(PublishMode.OUTBOX, outbox=outbox)
    with Session() as session:  # unbound: a statement on it would raise
        assert pub.publish(session, Event(type="order.created", key="o-1", payload={})) is PublishOutcome.OUTBOX
        assert outbox.backlog() == 0
        session.commit()
    assert [r["aggregateid"] for r in outbox.rows] == ["o-1"]
    pub.close()


def test_background_mode_stores_its_dead_letter_in_the_given_store() -> None:
    producer, store = MemoryProducer(), MemoryPublisherDeadLetters()
    producer.reject(reason="TOPIC_AUTHORIZATION_FAILED")  # the topic and its DLQ topic
    pub = publisher(PublishMode.BACKGROUND, producer=producer, dead_letters=store)
    event = Event(type="order.created", key="o-1", payload={})
    with Session() as session:
        pub.publish(session, event)
        session.commit()
        [future] = Publisher.background_futures(session)
    assert future.result(timeout=5) is BackgroundOutcome.DEAD_LETTER_TABLE
    record = store.by_event(event.event_id)
    assert record is not None and (record["source"], record["topic"]) == ("background", TOPIC)
    pub.close()


def test_direct_mode_async_dead_letters_a_rejection_and_holds_the_key_after_it() -> None:
    producer, store = MemoryProducer(), MemoryPublisherDeadLetters()
    producer.reject(TOPIC, times=1)
    pub = publisher(PublishMode.DIRECT, producer=producer, dead_letters=store)

    async def publish(key: str) -> PublishOutcome:
        async with AsyncSession() as session:
            outcome = await pub.publish_async(session, Event(type="order.created", key=key, payload={}))
            await session.commit()
            return outcome

    assert asyncio.run(publish("o-1")) is PublishOutcome.DEAD_LETTERED
    assert asyncio.run(publish("o-1")) is PublishOutcome.DEAD_LETTERED, "held behind the first one"
    assert asyncio.run(publish("o-2")) is PublishOutcome.PUBLISHED
    assert [r["key"] for r in store.records] == ["o-1", "o-1"] and len(producer.messages(TOPIC)) == 1
    pub.close()
