"""The producer port's contract (kafkaguard.transports.ports), run against both implementations.

Every test runs on the in-memory ``MemoryProducer`` and on the real ``DeliveryProducer`` with the
dev broker (real topics, read back with a plain confluent-kafka consumer), so the fake cannot drift
from what the relay, the publishers and the restore job meet in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError, KafkaUnavailableError, KeyHeldError
from kafkaguard.testing import MemoryProducer
from kafkaguard.testing.fakes.producer import record_size
from kafkaguard.testing.fixtures import TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from kafkaguard.transports.partitioner import partition_for
from kafkaguard.transports.ports import OutgoingMessage, Producer
from tests.integration.kafka_helpers import consume_all

Read = tuple[
    int, int, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]
]  # partition, offset, key, value, headers


@dataclass
class Under:
    """One producer implementation under contract: topics, producers and reading a topic back."""

    kind: str
    topic_factory: TopicFactory | None = None
    bootstrap: str = ""
    partitions: dict[str, int] = field(default_factory=dict)
    made: list[Any] = field(default_factory=list)

    def topic(self, name: str, partitions: int = 1) -> str:
        if self.topic_factory is None:
            topic = f"mem.{name}"
            self.partitions[topic] = partitions
            return topic
        return self.topic_factory(name, partitions=partitions)

    def producer(self, *, max_message_bytes: int | None = None, message_timeout: float = 20.0) -> Producer:
        made: Producer
        if self.topic_factory is None:
            made = MemoryProducer(
                partitions=self.partitions,
                default_partitions=None,  # like the dev broker: topics are not created on produce
                max_message_bytes=max_message_bytes or 1_000_000,
                message_timeout=message_timeout,
            )
        else:
            overrides = {} if max_message_bytes is None else {"message.max.bytes": max_message_bytes}
            made = DeliveryProducer(self.bootstrap, message_timeout=message_timeout, overrides=overrides)
        self.made.append(made)
        return made

    def read(self, producer: Producer, topic: str, expected: int) -> list[Read]:
        if isinstance(producer, MemoryProducer):
            return [(m.partition, m.offset, m.key, m.value, m.headers) for m in producer.messages(topic)]
        messages = consume_all(self.bootstrap, topic, expected, timeout=30)
        return [
            (int(m.partition() or 0), int(m.offset() or 0), m.key(), m.value(), tuple(m.headers() or ()))
            for m in sorted(messages, key=lambda m: (m.partition() or 0, m.offset() or 0))
        ]


@pytest.fixture(params=["memory", "kafka"])
def under(request: pytest.FixtureRequest) -> Iterator[Under]:
    if request.param == "memory":
        subject = Under("memory")
    else:
        subject = Under("kafka", request.getfixturevalue("topics"), request.getfixturevalue("kafka_bootstrap"))
    yield subject
    for producer in subject.made:
        producer.close(5)


def test_send_returns_where_the_message_was_stored_with_increasing_offsets(under: Under) -> None:
    topic = under.topic("offsets")
    producer = under.producer()
    delivered = [producer.send(topic, f"v{n}".encode(), key=b"K") for n in range(5)]
    assert [(d.topic, d.partition) for d in delivered] == [(topic, 0)] * 5
    assert [d.offset for d in delivered] == [0, 1, 2, 3, 4]
    assert [r[:2] for r in under.read(producer, topic, 5)] == [(0, n) for n in range(5)]


def test_key_value_and_headers_round_trip_byte_for_byte(under: Under) -> None:
    topic = under.topic("bytes")
    producer = under.producer()
    headers = [("a", b"1"), ("a", b""), ("\u00e9", b"\x00\xff")]
    producer.send(topic, b"\x00value\xff", key=b"\xff\x00", headers=headers)
    producer.send(topic, None)  # a tombstone without key
    producer.send(topic, b"", key=b"")  # empty, not absent
    read = under.read(producer, topic, 3)
    assert [(key, value, hdrs) for _, _, key, value, hdrs in read] == [
        (b"\xff\x00", b"\x00value\xff", tuple(headers)),
        (None, None, ()),
        (b"", b"", ()),
    ]


def test_a_key_lands_on_the_partition_javas_client_picks(under: Under) -> None:
    topic = under.topic("murmur2", partitions=5)
    producer = under.producer()
    keys = [f"order-{n}".encode() for n in range(40)] + [b"k0", b"x" * 300, "ключ".encode(), b""]
    for key in keys:
        assert producer.send(topic, b"{}", key=key).partition == partition_for(key, 5), key
    read = under.read(producer, topic, len(keys))
    assert sorted((key or b"", part) for part, _, key, _, _ in read) == sorted((k, partition_for(k, 5)) for k in keys)


def test_produce_all_acknowledges_every_message_and_keeps_each_keys_order(under: Under) -> None:
    topic = under.topic("batch", partitions=3)
    producer = under.producer()
    messages: list[OutgoingMessage] = [(topic, f"{k}-{n}".encode(), k.encode(), []) for n in range(10) for k in "ABC"]
    assert producer.produce_all(messages, timeout=20).wait() == [None] * 30
    read = under.read(producer, topic, 30)
    for k in "ABC":
        mine = [value for _, _, key, value, _ in read if key == k.encode()]
        assert mine == [f"{k}-{n}".encode() for n in range(10)], k


def test_an_empty_produce_all_is_settled_at_once(under: Under) -> None:
    started = time.monotonic()
    pending = under.producer().produce_all([], timeout=20)
    assert pending.wait() == [] and pending.refused == []
    assert time.monotonic() - started < 1.0


def test_a_message_above_max_message_bytes_is_refused_inside_the_call_and_holds_its_key(under: Under) -> None:
    topic = under.topic("size")
    producer = under.producer(max_message_bytes=1_000)
    assert producer.max_message_bytes == 1_000
    big = b"x" * 2_000
    messages: list[OutgoingMessage] = [
        (topic, big, b"K", []),
        (topic, b"k-after", b"K", []),  # must not overtake the refused one
        (topic, b"j", b"J", []),
        (topic, big, None, []),
        (topic, b"keyless-after", None, []),  # no key: nothing to hold
    ]
    pending = producer.produce_all(messages, timeout=20)
    assert pending.refused == [0, 1, 3], "known before produce_all returned"
    results = pending.wait()
    assert isinstance(results[0], EventRejectedError) and results[0].reason == "MSG_SIZE_TOO_LARGE"
    assert isinstance(results[1], KeyHeldError)
    assert isinstance(results[3], EventRejectedError) and results[3].reason == "MSG_SIZE_TOO_LARGE"
    assert results[2] is None and results[4] is None
    assert sorted(value or b"" for *_, value, _ in under.read(producer, topic, 2)) == [b"j", b"keyless-after"]
    with pytest.raises(EventRejectedError) as refused:
        producer.send(topic, big, key=b"K")
    assert refused.value.reason == "MSG_SIZE_TOO_LARGE"


def test_the_size_limit_counts_key_value_and_headers_as_librdkafka_does(under: Under) -> None:
    topic = under.topic("boundary")
    producer = under.producer(max_message_bytes=1_000)
    key, headers = b"key-1", [("event_id", b"0" * 36), ("h" * 70, b"")]  # a 70-byte name takes a 2-byte varint
    room = 1_000 - record_size(key, b"", headers)
    assert producer.send(topic, b"x" * room, key=key, headers=headers).offset == 0, "exactly the limit is accepted"
    with pytest.raises(EventRejectedError):
        producer.send(topic, b"x" * (room + 1), key=key, headers=headers)


def test_a_topic_that_does_not_exist_is_a_transient_failure_not_a_rejection(under: Under) -> None:
    producer = under.producer(message_timeout=2.0)
    topic = under.topic("exists") + "-missing"
    with pytest.raises(KafkaUnavailableError) as failed:
        producer.send(topic, b"{}", key=b"K")
    assert not isinstance(failed.value, EventRejectedError)


def test_send_async_awaits_the_ack(under: Under) -> None:
    topic = under.topic("async")
    producer = under.producer()

    async def both() -> list[int]:
        sent = await asyncio.gather(*(producer.send_async(topic, b"{}", key=b"K") for _ in range(2)))
        return sorted(d.offset for d in sent)

    assert asyncio.run(both()) == [0, 1]


def test_after_close_nothing_more_is_produced(under: Under) -> None:
    topic = under.topic("close")
    producer = under.producer()
    producer.send(topic, b"before", key=b"K")
    producer.close(5)
    producer.close(5)  # twice is harmless
    started = time.monotonic()
    with pytest.raises(KafkaUnavailableError, match="closed"):
        producer.send(topic, b"after", key=b"K")
    pending = producer.produce_all([(topic, b"after", b"K", []), (topic, b"after", None, [])], timeout=20)
    assert pending.refused == [0, 1]
    assert [type(r) for r in pending.wait()] == [KafkaUnavailableError, KafkaUnavailableError]
    assert time.monotonic() - started < 1.0, "refused at once, not after a timeout"
    assert [value for *_, value, _ in under.read(producer, topic, 1)] == [b"before"]


@pytest.fixture(params=["memory", "kafka"])
def unanswered(request: pytest.FixtureRequest) -> Iterator[Producer]:
    """A producer whose messages get no ack: the fake told to time out, the real one with no broker."""
    producer: Producer
    if request.param == "memory":
        fake = MemoryProducer(message_timeout=1.0)
        fake.time_out()
        producer = fake
    else:
        producer = DeliveryProducer("127.0.0.1:9", message_timeout=1.0)  # nothing listens on port 9
    yield producer
    producer.close(0.1)


def test_no_ack_in_time_is_a_delivery_timeout_for_every_message(unanswered: Producer) -> None:
    started = time.monotonic()
    messages: list[OutgoingMessage] = [("t", b"{}", f"k{i}".encode(), []) for i in range(5)]
    outcomes = unanswered.produce_all(messages, timeout=1.0).wait()
    assert len(outcomes) == 5 and all(isinstance(o, DeliveryTimeoutError) for o in outcomes), outcomes
    with pytest.raises(DeliveryTimeoutError):
        unanswered.send("t", b"{}", key=b"k", timeout=1.0)
    assert time.monotonic() - started < 8.0
