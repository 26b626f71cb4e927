"""The Publisher takes its producer through its constructor: with the in-memory one, no Kafka is needed."""

from __future__ import annotations

from sqlalchemy.orm import Session

from kafkaguard import Event, KafkaguardSettings, Publisher, PublishMode, PublishOutcome, PublishSettings
from kafkaguard import headers as H
from kafkaguard.publisher.background import BackgroundOutcome
from kafkaguard.testing import MemoryProducer

TOPIC = "outbox.event.order"


def publisher(mode: PublishMode, producer: MemoryProducer) -> Publisher:
    settings = KafkaguardSettings(publish=PublishSettings(default_mode=mode), bootstrap_servers="127.0.0.1:9")
    return Publisher(settings, producer=producer)


def test_background_mode_publishes_through_the_given_producer_after_the_commit() -> None:
    producer = MemoryProducer()
    pub = publisher(PublishMode.BACKGROUND, producer)
    event = Event(type="order.created", key="o-1", payload={"total": 3})
    with Session() as session:
        assert pub.publish(session, event) is PublishOutcome.SCHEDULED
        assert producer.messages() == [], "nothing before the commit"
        session.commit()
        futures = Publisher.background_futures(session)
    assert [f.result(timeout=5) for f in futures] == [BackgroundOutcome.PUBLISHED]
    [stored] = producer.messages(TOPIC)
    assert (stored.key, stored.value) == (b"o-1", event.payload_bytes())
    assert stored.header(H.EVENT_ID) == str(event.event_id).encode()
    pub.close()
    assert not producer.closed, "a producer passed in is the caller's to close"


def test_a_rolled_back_background_event_is_never_produced() -> None:
    producer = MemoryProducer()
    pub = publisher(PublishMode.BACKGROUND, producer)
    with Session() as session:
        pub.publish(session, Event(type="order.created", key="o-1", payload={}))
        session.rollback()
    pub.close()
    assert producer.produced() == []


def test_a_rejected_background_event_goes_to_the_dlq_topic_at_once() -> None:
    producer = MemoryProducer()
    producer.reject(TOPIC, reason="TOPIC_AUTHORIZATION_FAILED")
    pub = publisher(PublishMode.BACKGROUND, producer)
    with Session() as session:
        pub.publish(session, Event(type="order.created", key="o-1", payload={}))
        session.commit()
        [future] = Publisher.background_futures(session)
    assert future.result(timeout=5) is BackgroundOutcome.DLQ_TOPIC
    assert len(producer.produced(TOPIC)) == 1, "a rejection is not retried"
    [copy] = producer.messages(TOPIC + ".dlq")
    assert copy.header(H.DLQ_ORIGINAL_TOPIC) == TOPIC.encode()
    assert copy.header(H.DLQ_EXCEPTION_CLASS) == b"kafkaguard.errors.EventRejectedError"
    pub.close()


def test_direct_mode_sends_through_the_given_producer() -> None:
    producer = MemoryProducer(partitions={TOPIC: 3})
    pub = publisher(PublishMode.DIRECT, producer)
    event = Event(type="order.created", key="o-7", payload={"n": 1})
    with Session() as session:
        assert pub.direct().publish(session, event) is True
    [stored] = producer.messages(TOPIC)
    assert stored.key == b"o-7" and stored.offset == 0
    pub.close()
