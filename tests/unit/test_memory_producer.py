"""What the in-memory producer offers beyond the port's contract (which tests/contract checks on both
implementations): fault injection, reading back, and thread-safety."""

from __future__ import annotations

import threading

import pytest

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError
from kafkaguard.testing import MemoryProducer


def test_a_fault_with_times_wears_off_and_only_hits_what_it_matches() -> None:
    producer = MemoryProducer()
    producer.reject("a", where=lambda m: m.key == b"K", reason="POLICY_VIOLATION", times=1)
    assert producer.send("b", b"1", key=b"K").offset == 0, "another topic"
    assert producer.send("a", b"2", key=b"J").offset == 0, "another key"
    with pytest.raises(EventRejectedError) as rejected:
        producer.send("a", b"3", key=b"K")
    assert rejected.value.reason == "POLICY_VIOLATION"
    assert producer.send("a", b"4", key=b"K").offset == 1, "worn off; the rejected one took no offset"
    assert [m.value for m in producer.messages("a")] == [b"2", b"4"]
    assert [(m.value, m.offset) for m in producer.produced("a")] == [(b"2", 0), (b"3", -1), (b"4", 1)]


def test_a_timeout_may_still_have_written_the_message() -> None:
    producer = MemoryProducer()
    producer.time_out(stored=True, times=1)
    with pytest.raises(DeliveryTimeoutError):
        producer.send("t", b"v", key=b"K")
    producer.send("t", b"v", key=b"K")
    assert [m.offset for m in producer.messages("t")] == [0, 1], "the retry made a duplicate, as on Kafka"


def test_clear_faults_and_the_first_matching_fault_wins() -> None:
    producer = MemoryProducer()
    producer.time_out("t")
    producer.reject("t")
    with pytest.raises(DeliveryTimeoutError):
        producer.send("t", b"v")
    producer.clear_faults()
    assert producer.send("t", b"v").offset == 0


def test_keyless_messages_take_the_partitions_in_turn() -> None:
    producer = MemoryProducer(partitions={"t": 3})
    assert [producer.send("t", b"v").partition for _ in range(4)] == [0, 1, 2, 0]


def test_concurrent_sends_get_distinct_consecutive_offsets() -> None:
    producer = MemoryProducer()

    def send_many() -> None:
        for _ in range(200):
            producer.send("t", b"v", key=b"K")

    threads = [threading.Thread(target=send_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [m.offset for m in producer.messages("t")] == list(range(800))
