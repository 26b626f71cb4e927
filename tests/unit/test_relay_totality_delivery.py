"""Issue 13, Deliver 3: per-key order when the broker or librdkafka rejects a record inside a batch.

The delivery logic (relay/deliver.py) over a tiny fake producer that keeps produce_all's contract
(a key whose message failed in produce() gets no later message produced in that call); the contract
itself is checked on the real DeliveryProducer, offline (librdkafka refuses oversize messages
before any broker is asked).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError, KafkaUnavailableError, KeyHeldError
from kafkaguard.relay.deliver import InFlight, Sent, finish_publish, start_publish
from kafkaguard.relay.plan import Outcome, plan_round
from kafkaguard.relay.rows import OutboxRow, RejectReason, RowRejectedError
from kafkaguard.transports.kafka_delivery import (
    Delivered,
    DeliveryProducer,
    Headers,
    OutgoingMessage,
    PendingDeliveries,
)

A, T, R = Outcome.ACKED, Outcome.TRANSIENT, Outcome.REJECTED
WHEN = datetime(2026, 1, 2, tzinfo=UTC)


def row(n: int, key: str, *, payload: str = '{"n": 1}', aggregatetype: str = "doc") -> OutboxRow:
    return OutboxRow(
        f"00000000-0000-7000-8000-{n:012d}", n, aggregatetype, key, "doc.saved", payload, None, WHEN, 1, None
    )


class FakeTopics:
    def __init__(self, broken: Sequence[str] = ()) -> None:
        self.asked: list[str] = []
        self.broken = set(broken)

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        self.asked.append(topic)
        if topic in self.broken:
            raise KafkaUnavailableError(f"no metadata for {topic}")


class FakeProducer:
    """``fates[seq]``: 'ack' (default), 'sync' (refused in produce()), 'batch' (rejected in its batch,
    accepted alone), 'reject' (rejected in its batch and alone), 'timeout' (never reported)."""

    def __init__(self, fates: dict[int, str] | None = None, *, max_message_bytes: int = 1_000_000) -> None:
        self.fates = fates or {}
        self.max_message_bytes = max_message_bytes
        self.produced: list[int] = []  # seqs handed to "librdkafka", in order
        self.alone: list[int] = []

    @staticmethod
    def _seq(headers: Headers) -> int:
        return int(dict(headers)["event_id"].decode().rsplit("-", 1)[1])

    def produce_all(self, messages: Sequence[OutgoingMessage], timeout: float) -> PendingDeliveries:
        pending = PendingDeliveries([m[0] for m in messages], timeout)
        failed: set[bytes | None] = set()
        for index, (_topic, _value, key, headers) in enumerate(messages):
            seq = self._seq(headers)
            if key in failed:
                pending.refuse(index, KeyHeldError("an earlier message of its key failed"))
                continue
            fate = self.fates.get(seq, "ack")
            if fate == "sync":
                pending.refuse(index, EventRejectedError("MSG_SIZE_TOO_LARGE"))
                failed.add(key)
                continue
            self.produced.append(seq)
            if fate == "ack":
                pending.settle(index, None)
            elif fate in ("batch", "reject"):
                pending.settle(index, EventRejectedError("MSG_SIZE_TOO_LARGE (batch)"))
        return pending

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        seq = self._seq(headers)
        self.alone.append(seq)
        if self.fates.get(seq) == "reject":
            raise EventRejectedError("MSG_SIZE_TOO_LARGE (alone)")
        return Delivered(topic, 0, seq)


def start(
    rows: list[OutboxRow],
    producer: FakeProducer,
    *,
    stopped: set[str] | None = None,
    block_key: bool = True,
    timeout: float = 5.0,
    topics: FakeTopics | None = None,
    **kw: Any,
) -> InFlight:
    return start_publish(
        rows,
        producer=producer,
        topics=topics or FakeTopics(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        timeout=timeout,
        block_key=block_key,
        stopped=stopped or set(),
        started=0.0,
        **kw,
    )


def finish(flight: InFlight, producer: FakeProducer, *, block_key: bool = True) -> list[Sent]:
    return finish_publish(flight, producer=producer, timeout=1.0, block_key=block_key)


def outcomes(sent: list[Sent]) -> dict[int, tuple[Outcome, bool]]:
    """seq -> (outcome, has an error of its own)."""
    return {s.row.seq: (s.outcome, s.error is not None) for s in sent}


def plan_of(sent: list[Sent], block_key: bool = True, stopped: set[str] | None = None) -> tuple[list[int], ...]:
    plan = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent], block_key=block_key, stopped=stopped or set())
    return (
        [s.row.seq for s in plan.remove],
        [s.row.seq for s in plan.dead_letter],
        [s.row.seq for s in plan.kept_after_failure],
    )


def test_a_record_refused_in_produce_stops_its_key_in_the_batch() -> None:
    # The case: K's first record is 2 MB (librdkafka raises MSG_SIZE_TOO_LARGE in produce()).
    producer = FakeProducer({1: "sync"})
    flight = start([row(1, "K"), row(2, "J"), row(3, "K"), row(4, "J")], producer)
    assert producer.produced == [2, 4], "nothing of K after its refused record"
    assert flight.stopped == {"K"}
    sent = finish(flight, producer)
    assert outcomes(sent) == {1: (R, True), 2: (A, False), 3: (T, False), 4: (A, False)}
    assert producer.alone == [], "a record refused by produce() is not sent alone again"
    assert plan_of(sent) == ([2, 4], [1], [])  # 3 stays in the outbox behind the dead letter


def test_without_blocking_the_key_the_later_record_still_waits_for_the_next_round() -> None:
    producer = FakeProducer({1: "sync"})
    sent = finish(start([row(1, "K"), row(2, "K")], producer, block_key=False), producer, block_key=False)
    assert producer.produced == []
    assert plan_of(sent, block_key=False) == ([], [1], [])  # 2 stays; sent next round, after 1 left


def test_a_key_stopped_in_batch_n_is_held_in_the_pipelined_batch_n_plus_1() -> None:
    producer = FakeProducer({1: "sync"})
    first = start([row(1, "K"), row(2, "J")], producer)
    # Batch N+1 is produced before batch N is settled, with N's stopped keys.
    second = start([row(3, "K"), row(4, "J")], producer, stopped=first.stopped)
    assert producer.produced == [2, 4]
    assert second.stopped == {"K"}, "held rows hold their key for batch N+2 too"
    sent_n = finish(first, producer)
    plan_n = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent_n], block_key=True)
    assert outcomes(finish(second, producer)) == {3: (T, False), 4: (A, False)}
    assert plan_n.stopped == {"K"}


def test_a_record_rejected_in_its_batch_is_sent_alone_and_acked() -> None:
    producer = FakeProducer({1: "batch"})
    sent = finish(start([row(1, "K"), row(2, "J")], producer), producer)
    assert producer.alone == [1]
    assert plan_of(sent) == ([1, 2], [], [])


def test_a_record_rejected_alone_too_is_a_dead_letter_and_its_key_stops() -> None:
    # Both of K's records fell in one rejected batch: the first is tried alone (rejected again),
    # the second is not tried at all and stays behind the dead letter.
    producer = FakeProducer({1: "reject", 2: "batch"})
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert producer.alone == [1]
    assert plan_of(sent) == ([3], [1], [])


def test_a_barrier_record_holds_its_key_until_its_report() -> None:
    big = '{"b": "' + "x" * 950 + '"}'
    producer = FakeProducer(max_message_bytes=1_000)
    flight = start([row(1, "K", payload=big), row(2, "K"), row(3, "J")], producer)
    assert producer.produced == [1, 3], "K's next record waits for the near-limit one"
    assert flight.stopped == {"K"}
    nxt = start([row(4, "K")], producer, stopped=flight.stopped)
    assert producer.produced == [1, 3], "and is held in the pipelined next batch too"
    assert outcomes(finish(flight, producer)) == {1: (A, False), 2: (T, False), 3: (A, False)}
    assert outcomes(finish(nxt, producer)) == {4: (T, False)}


def test_the_topic_limit_makes_smaller_records_barriers() -> None:
    payload = '{"b": "' + "x" * 60_000 + '"}'  # far below the producer's 1 MB, near the topic's 64 kB
    producer = FakeProducer()
    start([row(1, "K", payload=payload), row(2, "K")], producer, topic_limit=lambda topic: 64_000)
    assert producer.produced == [1]
    producer = FakeProducer()
    start([row(1, "K", payload=payload), row(2, "K")], producer, topic_limit=lambda topic: None)
    assert producer.produced == [1, 2]


def test_a_timed_out_record_keeps_its_keys_later_acks_in_the_outbox() -> None:
    producer = FakeProducer({1: "timeout"})
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer, timeout=0.05), producer)
    assert isinstance(sent[0].error, DeliveryTimeoutError)
    assert plan_of(sent) == ([3], [], [2])  # 2 is sent again after 1: nothing dead-lettered for an outage


def test_a_transient_topic_failure_holds_the_key_and_nothing_is_produced_for_it() -> None:
    producer = FakeProducer()
    topics = FakeTopics(broken=["outbox.event.down"])
    flight = start([row(1, "K", aggregatetype="down"), row(2, "K"), row(3, "J")], producer, topics=topics)
    assert producer.produced == [3]
    assert flight.stopped == {"K"}
    assert outcomes(finish(flight, producer)) == {1: (T, True), 2: (T, False), 3: (A, False)}


def test_rows_that_cannot_be_events_are_rejected_one_by_one() -> None:
    deep = "[" * 5000 + "]" * 5000
    rows = [row(1, "A", payload=deep), row(2, ""), row(3, ""), row(4, "B"), row(5, "C", aggregatetype="bad topic")]
    producer = FakeProducer()
    topics = FakeTopics()
    sent = finish(start(rows, producer, topics=topics), producer)
    assert producer.produced == [4]
    assert "outbox.event.bad topic" not in topics.asked, "an invalid topic name is refused without asking Kafka"
    reasons = {s.row.seq: getattr(s.error, "reason", None) for s in sent}
    assert reasons == {1: RejectReason.NOT_AN_OBJECT, 2: RejectReason.MISSING_KEY, 3: RejectReason.MISSING_KEY,
                       4: None, 5: None}  # fmt: skip
    assert isinstance(sent[4].error, EventRejectedError) and "not a valid Kafka topic name" in str(sent[4].error)
    assert plan_of(sent) == ([4], [1, 2, 3, 5], []), "keyless rows hold back nothing, not even each other"


def test_an_unexpected_error_preparing_a_row_rejects_only_that_row() -> None:
    def for_aggregate(agg: str) -> str:
        if agg == "boom":
            raise RuntimeError("a routing bug")
        return f"outbox.event.{agg}"

    producer = FakeProducer()
    flight = start_publish(
        [row(1, "K", aggregatetype="boom"), row(2, "J")],
        producer=producer,
        topics=FakeTopics(),
        for_aggregate=for_aggregate,
        timeout=1.0,
        block_key=True,
        started=0.0,
    )
    sent = finish(flight, producer)
    assert isinstance(sent[0].error, RowRejectedError) and sent[0].error.reason is RejectReason.UNEXPECTED
    assert plan_of(sent) == ([2], [1], [])


def test_produce_all_produces_nothing_of_a_key_after_a_refusal_in_produce() -> None:
    # The real producer, offline: librdkafka refuses a message above message.max.bytes inside produce().
    producer = DeliveryProducer("127.0.0.1:9", message_timeout=1.0, overrides={"message.max.bytes": 1000})
    try:
        assert producer.max_message_bytes == 1000
        big = b"x" * 2000
        messages: list[OutgoingMessage] = [("t", big, b"K", []), ("t", b"{}", b"K", []), ("t", b"{}", b"J", [])]
        messages += [("t", big, None, []), ("t", b"{}", None, [])]
        pending = producer.produce_all(messages, timeout=0.5)
        assert pending.refused == [0, 1, 3]
        results = pending.wait()
        assert isinstance(results[0], EventRejectedError) and "MSG_SIZE_TOO_LARGE" in str(results[0])
        assert isinstance(results[1], KeyHeldError)
        assert isinstance(results[2], DeliveryTimeoutError)  # produced; no broker answers
        assert isinstance(results[3], EventRejectedError)
        assert isinstance(results[4], DeliveryTimeoutError), "messages without a key are never held"
    finally:
        producer.close(0.1)
