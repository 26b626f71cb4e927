"""Publish one round's claimed rows and decide each row's fate (the relay's Kafka side).

Guarantees: a row is reported acknowledged only on the broker's delivery report; rows of a key
that already failed in this round are not produced (nothing overtakes a failed row); a row the
broker rejected inside a batch is sent once more on its own before it is called rejected, since a
broker refuses a whole batch when the batch (not the record) is too large.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from kafkaguard.envelope import EnvelopeError, Event
from kafkaguard.errors import EventRejectedError, PublishError
from kafkaguard.relay.plan import Outcome
from kafkaguard.relay.rows import Message, OutboxRow, fallback_event, to_event, to_message, topic_of
from kafkaguard.transports.kafka_delivery import DeliveryProducer, OutgoingMessage, PendingDeliveries
from kafkaguard.transports.kafka_topics import TopicRegistry

logger = logging.getLogger(__name__)


@dataclass
class Sent:
    """One row's message, topic and outcome (``error`` set unless acknowledged)."""

    row: OutboxRow
    message: Message | None  # None when the row is not an event
    topic: str
    outcome: Outcome = Outcome.TRANSIENT
    error: BaseException | None = None
    rejected_in_batch: bool = False

    @cached_property
    def event(self) -> Event:
        """The row as an event, for dead letters and logs (decoded only when needed)."""
        try:
            return to_event(self.row)
        except EnvelopeError:
            return fallback_event(self.row)


def _classify(exc: BaseException) -> Outcome:
    return Outcome.REJECTED if isinstance(exc, EventRejectedError | EnvelopeError) else Outcome.TRANSIENT


def _prepare(
    row: OutboxRow,
    for_aggregate: Callable[[str], str],
    topics: TopicRegistry,
    timeout: float,
    topic_errors: dict[str, PublishError | None],
) -> Sent:
    topic = topic_of(row, for_aggregate)
    try:
        message = to_message(row)
    except EnvelopeError as exc:
        return Sent(row, None, topic, Outcome.REJECTED, exc)
    if topic not in topic_errors:  # ask Kafka once per topic and round, not once per row
        try:
            topics.ensure(topic, timeout=timeout)
            topic_errors[topic] = None
        except PublishError as exc:
            topic_errors[topic] = exc
    error = topic_errors[topic]
    if error is not None:
        return Sent(row, message, topic, _classify(error), error)
    return Sent(row, message, topic)


@dataclass
class InFlight:
    """A round handed to the producer and not yet settled."""

    sent: list[Sent]
    produced: list[Sent]
    pending: PendingDeliveries
    stopped: set[str]  # keys that failed before produce (their later rows were not produced)
    started: float  # time.monotonic() when its rows were claimed (the batch latency metric)

    @property
    def ids(self) -> list[str]:
        """The ids of the round's rows (a pipelined claim leaves them out)."""
        return [s.row.id for s in self.sent]


def start_publish(
    rows: Sequence[OutboxRow],
    *,
    producer: DeliveryProducer,
    topics: TopicRegistry,
    for_aggregate: Callable[[str], str],
    timeout: float,
    block_key: bool,
    stopped: Iterable[str] = (),
    started: float,
) -> InFlight:
    """Produce ``rows`` (in seq order) without waiting. Rows of a key in ``stopped`` (failed in an
    earlier round still in flight) or of a key whose earlier row failed here are held back.
    ``started``: when ``rows`` were claimed."""
    sent: list[Sent] = []
    produced: list[Sent] = []
    outgoing: list[OutgoingMessage] = []
    held = set(stopped)
    failed_here: set[str] = set()
    topic_errors: dict[str, PublishError | None] = {}
    topic_names: dict[str, str] = {}  # aggregate type -> topic, worked out once per round

    def named(aggregate_type: str) -> str:
        if aggregate_type not in topic_names:
            topic_names[aggregate_type] = for_aggregate(aggregate_type)
        return topic_names[aggregate_type]

    for row in rows:
        item = _prepare(row, named, topics, min(timeout, 10.0), topic_errors)
        sent.append(item)
        if row.aggregateid in held:
            item.outcome, item.error = Outcome.TRANSIENT, None  # held back behind an earlier row
            continue
        if item.error is not None or item.message is None:
            if item.outcome is Outcome.TRANSIENT or block_key:
                held.add(row.aggregateid)
                failed_here.add(row.aggregateid)
            continue
        produced.append(item)
        msg = item.message
        outgoing.append((item.topic, msg.value, msg.key, msg.headers))
    return InFlight(sent, produced, producer.produce_all(outgoing, timeout), failed_here, started)


def finish_publish(flight: InFlight, *, producer: DeliveryProducer, timeout: float, block_key: bool) -> list[Sent]:
    """Wait for ``flight``'s delivery reports and set each row's outcome."""
    for item, error in zip(flight.produced, flight.pending.wait(), strict=True):
        item.outcome, item.error = (Outcome.ACKED, None) if error is None else (_classify(error), error)
        item.rejected_in_batch = item.outcome is Outcome.REJECTED
    _retry_rejected_alone(flight.sent, producer, timeout, block_key)
    return flight.sent


def _retry_rejected_alone(sent: list[Sent], producer: DeliveryProducer, timeout: float, block_key: bool) -> None:
    """Send each broker-rejected row once more, alone, in seq order, unless its key already stopped."""
    stopped: set[str] = set()
    for item in sent:
        key = item.row.aggregateid
        if key in stopped:
            continue
        if item.rejected_in_batch and item.message is not None:
            msg = item.message
            logger.info("event %s (key %s) rejected by %s in a batch; sending it alone", item.row.id, key, item.topic)
            try:
                producer.send(item.topic, msg.value, key=msg.key, headers=msg.headers, timeout=timeout)
                item.outcome, item.error = Outcome.ACKED, None
                continue
            except PublishError as exc:
                item.outcome, item.error = _classify(exc), exc
        if item.outcome is Outcome.TRANSIENT or (item.outcome is Outcome.REJECTED and block_key):
            stopped.add(key)
