"""The relay's delivery logic (relay/deliver.py) over the in-memory producer: no Kafka, no PostgreSQL.

``start_publish`` hands a round to the producer, ``finish_publish`` settles it (sending each
broker-rejected row once more alone), ``plan_round`` decides what leaves the outbox; the relay
worker carries ``stopped`` keys from batch N into the pipelined batch N+1 exactly as done here
(``stopped | flight.stopped`` at start, the previous plan's ``stopped`` at settle). The fake keeps
the real producer's contract (tests/contract/test_producer_contract.py), so these cases hold for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError, KafkaUnavailableError
from kafkaguard.relay.deliver import InFlight, Sent, finish_publish, start_publish
from kafkaguard.relay.plan import RowOutcome, plan_round
from kafkaguard.relay.rows import OutboxRow, RejectReason, RowRejectedError
from kafkaguard.testing import MemoryProducer, StoredMessage

A, T, R = RowOutcome.ACKED, RowOutcome.TRANSIENT, RowOutcome.REJECTED
WHEN = datetime(2026, 1, 2, tzinfo=UTC)
TOPIC = "outbox.event.doc"


def row(n: int, key: str, *, payload: str = '{"n": 1}', aggregatetype: str = "doc") -> OutboxRow:
    return OutboxRow(
        f"00000000-0000-7000-8000-{n:012d}", n, aggregatetype, key, "doc.saved", payload, None, WHEN, 1, None
    )


def seq_of(message: StoredMessage) -> int:
    event_id = message.header("event_id") or b"-0"
    return int(event_id.decode().rsplit("-", 1)[1])


def seqs(*wanted: int) -> Any:
    """A fault predicate: the messages of these rows."""
    return lambda message: seq_of(message) in wanted


def produced(producer: MemoryProducer) -> list[int]:
    """The rows handed to the producer (accepted by the produce call), in order."""
    return [seq_of(m) for m in producer.produced()]


def stored(producer: MemoryProducer) -> list[int]:
    return [seq_of(m) for m in producer.messages()]


class FakeTopics:
    def __init__(self, broken: Sequence[str] = ()) -> None:
        self.asked: list[str] = []
        self.broken = set(broken)

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        self.asked.append(topic)
        if topic in self.broken:
            raise KafkaUnavailableError(f"no metadata for {topic}")


def start(
    rows: list[OutboxRow],
    producer: MemoryProducer,
    *,
    stopped: set[str] | None = None,
    block_key: bool = True,
    topics: FakeTopics | None = None,
    **kw: Any,
) -> InFlight:
    return start_publish(
        rows,
        producer=producer,
        topics=topics or FakeTopics(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        timeout=5.0,
        block_key=block_key,
        stopped=stopped or set(),
        started=0.0,
        **kw,
    )


def finish(flight: InFlight, producer: MemoryProducer, *, block_key: bool = True) -> list[Sent]:
    return finish_publish(flight, producer=producer, timeout=1.0, block_key=block_key)


def outcomes(sent: list[Sent]) -> dict[int, tuple[RowOutcome, bool]]:
    """seq -> (outcome, has an error of its own)."""
    return {s.row.seq: (s.outcome, s.error is not None) for s in sent}


def plan_of(sent: list[Sent], block_key: bool = True, stopped: set[str] | None = None) -> tuple[list[int], ...]:
    """(removed, dead-lettered, acknowledged but kept behind a failure) as seqs."""
    plan = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent], block_key=block_key, stopped=stopped or set())
    return (
        [s.row.seq for s in plan.remove],
        [s.row.seq for s in plan.dead_letter],
        [s.row.seq for s in plan.kept_after_failure],
    )


BIG = '{"b": "' + "x" * 2000 + '"}'  # above the 1,000-byte producer below: refused inside produce()


# --- rejections inside a batch ---------------------------------------------------------------------


def test_a_record_refused_in_produce_stops_its_key_in_the_batch() -> None:
    producer = MemoryProducer(max_message_bytes=1_000)
    flight = start([row(1, "K", payload=BIG), row(2, "J"), row(3, "K"), row(4, "J")], producer)
    assert produced(producer) == [2, 4], "nothing of K after its refused record"
    assert flight.stopped == {"K"}
    sent = finish(flight, producer)
    assert outcomes(sent) == {1: (R, True), 2: (A, False), 3: (T, False), 4: (A, False)}
    assert isinstance(sent[0].error, EventRejectedError) and sent[0].error.reason == "MSG_SIZE_TOO_LARGE"
    assert not sent[0].rejected_in_batch, "a record refused by produce() is not sent alone again"
    assert produced(producer) == [2, 4]
    assert plan_of(sent) == ([2, 4], [1], [])  # 3 stays in the outbox behind the dead letter


def test_without_blocking_the_key_the_later_record_still_waits_for_the_next_round() -> None:
    producer = MemoryProducer(max_message_bytes=1_000)
    sent = finish(start([row(1, "K", payload=BIG), row(2, "K")], producer, block_key=False), producer, block_key=False)
    assert produced(producer) == []
    assert plan_of(sent, block_key=False) == ([], [1], [])  # 2 stays; sent next round, after 1 left


def test_a_broker_rejection_in_a_batch_dead_letters_that_row_and_keeps_its_keys_later_rows() -> None:
    # The broker refuses K's first record in its delivery report (and again alone); K's second
    # record was already in the batch and acknowledged: it stays in the outbox, to be sent again
    # after the dead letter, so it never overtakes it. J flows.
    producer = MemoryProducer()
    producer.reject(where=seqs(1), reason="POLICY_VIOLATION")
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert produced(producer) == [1, 2, 3, 1], "1 is sent once more alone"
    assert outcomes(sent) == {1: (R, True), 2: (A, False), 3: (A, False)}
    assert isinstance(sent[0].error, EventRejectedError) and sent[0].error.reason == "POLICY_VIOLATION"
    assert plan_of(sent) == ([3], [1], [2])
    assert stored(producer) == [2, 3]


def test_a_record_rejected_in_its_batch_is_sent_alone_and_acked() -> None:
    producer = MemoryProducer()
    producer.reject(where=seqs(1), reason="RECORD_LIST_TOO_LARGE", times=1)  # the batch was too large, not the record
    sent = finish(start([row(1, "K"), row(2, "J")], producer), producer)
    assert [s.rejected_in_batch for s in sent] == [True, False]
    assert produced(producer) == [1, 2, 1]
    assert plan_of(sent) == ([1, 2], [], [])
    assert stored(producer) == [2, 1]


def test_a_record_rejected_alone_too_is_a_dead_letter_and_its_key_stops() -> None:
    # Both of K's records fell in one rejected batch: the first is tried alone (rejected again),
    # the second is not tried alone at all and stays behind the dead letter.
    producer = MemoryProducer()
    producer.reject(where=seqs(1))
    producer.reject(where=seqs(2), times=1)
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert produced(producer) == [1, 2, 3, 1]
    assert outcomes(sent) == {1: (R, True), 2: (R, True), 3: (A, False)}
    assert plan_of(sent) == ([3], [1], [])


def test_without_blocking_the_key_a_retried_alone_rejection_does_not_stop_the_next_record() -> None:
    producer = MemoryProducer()
    producer.reject(where=seqs(1))
    producer.reject(where=seqs(2), times=1)
    sent = finish(start([row(1, "K"), row(2, "K")], producer, block_key=False), producer, block_key=False)
    assert produced(producer) == [1, 2, 1, 2], "2 is tried alone too: nothing of K waits behind a dead letter"
    assert plan_of(sent, block_key=False) == ([2], [1], [])


def test_a_timeout_of_the_record_sent_alone_is_transient_and_stops_its_key() -> None:
    producer = MemoryProducer()
    producer.reject(where=seqs(1), times=1)
    producer.time_out(where=seqs(1))
    producer.reject(where=seqs(2), times=1)
    sent = finish(start([row(1, "K"), row(2, "K")], producer), producer)
    assert isinstance(sent[0].error, DeliveryTimeoutError)
    assert produced(producer) == [1, 2, 1], "K stopped: 2 is not tried alone"
    assert plan_of(sent) == ([], [], []), "both stay for the next round; nothing is dead-lettered"


# --- a key stopped in batch N stays stopped in batch N+1 -------------------------------------------


def test_a_key_refused_in_produce_in_batch_n_is_held_in_the_pipelined_batch_n_plus_1() -> None:
    producer = MemoryProducer(max_message_bytes=1_000)
    first = start([row(1, "K", payload=BIG), row(2, "J")], producer)
    # Batch N+1 is produced before batch N is settled, with N's stopped keys.
    second = start([row(3, "K"), row(4, "J")], producer, stopped=first.stopped)
    assert produced(producer) == [2, 4]
    assert second.stopped == {"K"}, "held rows hold their key for batch N+2 too"
    plan_n = plan_round([(s.row.aggregateid, s, s.outcome) for s in finish(first, producer)], block_key=True)
    assert plan_n.stopped == {"K"}
    sent_n1 = finish(second, producer)
    assert outcomes(sent_n1) == {3: (T, False), 4: (A, False)}
    assert plan_of(sent_n1, stopped=plan_n.stopped) == ([4], [], [])


def test_a_key_rejected_by_the_broker_in_batch_n_keeps_its_acked_rows_of_batch_n_plus_1() -> None:
    # A delivery-report rejection is only known at settle time, after batch N+1 was produced: its
    # K row is acknowledged, and the plan of N+1 (given N's stopped keys, as the worker does) keeps it.
    producer = MemoryProducer()
    producer.reject(where=seqs(1))
    first = start([row(1, "K"), row(2, "J")], producer)
    second = start([row(3, "K"), row(4, "J")], producer, stopped=first.stopped)
    assert first.stopped == set() and produced(producer) == [1, 2, 3, 4]
    sent_n = finish(first, producer)
    plan_n = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent_n], block_key=True)
    assert [s.row.seq for s in plan_n.dead_letter] == [1] and plan_n.stopped == {"K"}
    sent_n1 = finish(second, producer)
    assert outcomes(sent_n1) == {3: (A, False), 4: (A, False)}
    assert plan_of(sent_n1, stopped=plan_n.stopped) == ([4], [], [3]), "3 is sent again after the dead letter"


def test_a_barrier_record_holds_its_key_until_its_report() -> None:
    big = '{"b": "' + "x" * 950 + '"}'
    producer = MemoryProducer(max_message_bytes=1_200)
    flight = start([row(1, "K", payload=big), row(2, "K"), row(3, "J")], producer)
    assert produced(producer) == [1, 3], "K's next record waits for the near-limit one"
    assert flight.stopped == {"K"}
    nxt = start([row(4, "K")], producer, stopped=flight.stopped)
    assert produced(producer) == [1, 3], "and is held in the pipelined next batch too"
    assert outcomes(finish(flight, producer)) == {1: (A, False), 2: (T, False), 3: (A, False)}
    assert outcomes(finish(nxt, producer)) == {4: (T, False)}


def test_the_topic_limit_makes_smaller_records_barriers() -> None:
    payload = '{"b": "' + "x" * 60_000 + '"}'  # far below the producer's 1 MB, near the topic's 64 kB
    producer = MemoryProducer()
    start([row(1, "K", payload=payload), row(2, "K")], producer, topic_limit=lambda topic: 64_000)
    assert produced(producer) == [1]
    producer = MemoryProducer()
    start([row(1, "K", payload=payload), row(2, "K")], producer, topic_limit=lambda topic: None)
    assert produced(producer) == [1, 2]


# --- timeouts and outages: transient, the row stays ------------------------------------------------


def test_a_timed_out_record_keeps_its_keys_later_acks_in_the_outbox() -> None:
    producer = MemoryProducer()
    producer.time_out(where=seqs(1))
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert isinstance(sent[0].error, DeliveryTimeoutError) and not sent[0].rejected_in_batch
    assert outcomes(sent) == {1: (T, True), 2: (A, False), 3: (A, False)}
    assert plan_of(sent) == ([3], [], [2])  # 2 is sent again after 1: nothing dead-lettered for an outage
    assert produced(producer) == [1, 2, 3], "a timeout is not retried alone"


def test_a_timed_out_record_that_reached_the_broker_is_sent_again_next_round() -> None:
    # Kafka's timeout means "unknown": the record may be on the topic, and the row stays, so the
    # next round publishes it a second time (consumers dedupe by event id).
    producer = MemoryProducer()
    producer.time_out(where=seqs(1), times=1, stored=True)
    first = finish(start([row(1, "K")], producer), producer)
    assert plan_of(first) == ([], [], [])
    assert plan_of(finish(start([row(1, "K")], producer), producer)) == ([1], [], [])
    assert stored(producer) == [1, 1]


def test_a_whole_batch_timing_out_leaves_every_row() -> None:
    producer = MemoryProducer()
    producer.time_out(TOPIC)
    sent = finish(start([row(1, "K"), row(2, "J"), row(3, "K")], producer), producer)
    assert all(isinstance(s.error, DeliveryTimeoutError) for s in sent)
    assert plan_of(sent) == ([], [], [])
    assert stored(producer) == []


def test_a_closed_producer_fails_every_row_transiently() -> None:
    producer = MemoryProducer()
    producer.close()
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert outcomes(sent) == {1: (T, True), 2: (T, False), 3: (T, True)}
    assert plan_of(sent) == ([], [], [])


def test_a_transient_topic_failure_holds_the_key_and_nothing_is_produced_for_it() -> None:
    producer = MemoryProducer()
    topics = FakeTopics(broken=["outbox.event.down"])
    flight = start([row(1, "K", aggregatetype="down"), row(2, "K"), row(3, "J")], producer, topics=topics)
    assert produced(producer) == [3]
    assert flight.stopped == {"K"}
    assert outcomes(finish(flight, producer)) == {1: (T, True), 2: (T, False), 3: (A, False)}


# --- rows that are not events ----------------------------------------------------------------------


def test_rows_that_cannot_be_events_are_rejected_one_by_one() -> None:
    deep = "[" * 5000 + "]" * 5000
    rows = [row(1, "A", payload=deep), row(2, ""), row(3, ""), row(4, "B"), row(5, "C", aggregatetype="bad topic")]
    producer = MemoryProducer()
    topics = FakeTopics()
    sent = finish(start(rows, producer, topics=topics), producer)
    assert produced(producer) == [4]
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

    producer = MemoryProducer()
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
