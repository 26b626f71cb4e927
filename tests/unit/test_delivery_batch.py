"""``DeliveryProducer.produce_all``: one outcome per message, in order, also when nothing answers."""

import time

from kafkaguard.errors import DeliveryTimeoutError
from kafkaguard.transports.kafka_delivery import DeliveryProducer


def test_an_empty_batch_is_settled_at_once() -> None:
    producer = DeliveryProducer("127.0.0.1:9", message_timeout=1.0)
    try:
        assert producer.produce_all([], timeout=1.0).wait() == []
    finally:
        producer.close(0.1)


def test_every_message_gets_a_timeout_when_no_broker_answers() -> None:
    # Nothing listens on port 9: librdkafka times each message out after message.timeout.ms.
    producer = DeliveryProducer("127.0.0.1:9", message_timeout=1.0)
    try:
        started = time.monotonic()
        outcomes = producer.produce_all([("t", b"{}", f"k{i}".encode(), []) for i in range(5)], timeout=1.0).wait()
        assert len(outcomes) == 5
        assert all(isinstance(o, DeliveryTimeoutError) for o in outcomes), outcomes
        assert time.monotonic() - started < 5.0
    finally:
        producer.close(0.1)
