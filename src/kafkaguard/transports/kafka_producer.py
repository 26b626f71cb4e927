"""A thin synchronous wrapper around confluent-kafka's producer that reports delivery per message.

Guarantee: :meth:`SyncProducer.send` returns only after the broker acknowledged the message with
the configured ``acks`` (``all`` by default), and raises a :class:`~kafkaguard.errors.PublishError`
otherwise; librdkafka's error codes never leak to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from kafkaguard.errors import DeliveryTimeoutError, PublishError
from kafkaguard.transports.kafka_config import producer_config

Headers = Sequence[tuple[str, bytes]]


@dataclass(frozen=True)
class Delivered:
    """Where the broker stored a message."""

    topic: str
    partition: int
    offset: int


def translate(error: KafkaError, topic: str) -> PublishError:
    """Convert a librdkafka delivery error into kafkaguard's error tree."""
    if error.code() in (KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT):
        return DeliveryTimeoutError(
            f"the broker did not acknowledge a message to {topic!r} in time ({error.str()}); "
            "Kafka is down or has too few in-sync replicas"
        )
    return PublishError(f"producing to {topic!r} failed: {error.name()}: {error.str()}")


class SyncProducer:
    """Produce one message at a time and wait for its delivery report."""

    def __init__(self, bootstrap: str, *, timeout: float = 30.0, overrides: Mapping[str, Any] | None = None) -> None:
        self.timeout = timeout
        self._producer = Producer(
            producer_config(
                bootstrap,
                overrides,
                **{
                    "message.timeout.ms": int(timeout * 1000),
                    # An in-flight request is only failed when it times out itself.
                    "request.timeout.ms": min(int(timeout * 1000), 30_000),
                },
            )
        )

    def send(self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()) -> Delivered:
        """Produce and wait for the broker's ack; raise PublishError or DeliveryTimeoutError on failure."""
        outcome: list[Message] = []
        failure: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failure.append(err)
            else:
                outcome.append(msg)

        self._producer.produce(topic, value=value, key=key, headers=list(headers), on_delivery=on_delivery)
        deadline = time.monotonic() + self.timeout + 2  # librdkafka normally reports the timeout first
        while not outcome and not failure:
            if time.monotonic() > deadline:
                raise DeliveryTimeoutError(
                    f"the broker did not acknowledge a message to {topic!r} within {self.timeout:.0f} s; "
                    "Kafka is down or has too few in-sync replicas"
                )
            self._producer.poll(0.1)
        if failure:
            raise translate(failure[0], topic)
        msg = outcome[0]
        return Delivered(topic=str(msg.topic()), partition=int(msg.partition() or 0), offset=int(msg.offset() or 0))

    def close(self) -> None:
        """Wait for outstanding deliveries (up to the timeout)."""
        self._producer.flush(self.timeout)
