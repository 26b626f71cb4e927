"""Publish one round's claimed rows and decide each row's fate (the relay's Kafka side).

Guarantees:

- a row is reported acknowledged only on the broker's delivery report;
- totality: whatever a row contains, preparing it either gives a message or rejects that row
  (:class:`~kafkaguard.relay.rows.RowRejectedError`, or an unforeseen exception turned into a
  rejection); one row never stops the others;
- per-key order: no row of a key is produced after an earlier row of that key that failed, was held
  back, or may still be refused by the broker, in this round and in the pipelined next one:

  * a row that failed before produce (not an event, topic refused) holds its key (with
    ``block_key``, or when the failure is transient);
  * a row librdkafka refused inside ``produce()`` (e.g. larger than ``message.max.bytes``) holds
    its key: the producer port's ``produce_all`` (:mod:`kafkaguard.transports.ports`) does not
    produce the key's later messages;
  * a *barrier* record (at least 90 % of the smaller of the producer's and the topic's size
    limit, see :mod:`kafkaguard.relay.limits`) holds its key until its delivery report: the broker
    could refuse it while acknowledging a later record of the key sent in another request;
  * :attr:`InFlight.stopped` carries every such key into the next round, which is produced before
    this round's reports are in;
- a row the broker rejected inside a batch is sent once more on its own before it is called
  rejected, since a broker refuses a whole batch when the batch (not the record) is too large.

Rows without a key (empty ``aggregateid``) are always rejected and hold nothing back: they have no
order to keep, and their dead letter has key NULL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError
from kafkaguard.errors import EventRejectedError, KeyHeldError, PublishError
from kafkaguard.logtext import short
from kafkaguard.relay.limits import barrier_bytes
from kafkaguard.relay.plan import RowOutcome
from kafkaguard.relay.rows import Message, OutboxRow, RejectReason, RowRejectedError, to_message, topic_of
from kafkaguard.transports.ports import OutgoingMessage, PendingDeliveries, Producer, Topics

logger = logging.getLogger(__name__)

# Kafka's own rule for topic names (kafka.common.internals.Topic.validate).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


def no_topic_limits(_topic: str) -> int | None:
    """A topic-limit lookup that knows nothing (only the producer's limit counts)."""
    return None


class Sent:
    """One row's message, topic and outcome (``error`` set unless acknowledged or only held back).

    A slotted class with a plain ``__init__`` (one is built per relayed row; a dataclass's generated
    init and dict cost twice as much).
    """

    __slots__ = ("error", "message", "outcome", "rejected_in_batch", "row", "topic")

    def __init__(
        self,
        row: OutboxRow,
        message: Message | None,  # None when the row is not an event
        topic: str,
        outcome: RowOutcome = RowOutcome.TRANSIENT,
        error: BaseException | None = None,
        rejected_in_batch: bool = False,
    ) -> None:
        self.row = row
        self.message = message
        self.topic = topic
        self.outcome = outcome
        self.error = error
        self.rejected_in_batch = rejected_in_batch

    def __repr__(self) -> str:
        return f"Sent({self.row.id}, {self.topic!r}, {self.outcome.name}, error={self.error!r})"


def _classify(exc: BaseException) -> RowOutcome:
    return RowOutcome.REJECTED if isinstance(exc, EventRejectedError | EnvelopeError) else RowOutcome.TRANSIENT


def _check_topic(topic: str, topics: Topics, timeout: float) -> PublishError | None:
    if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        return EventRejectedError(f"{short(topic)!r} is not a valid Kafka topic name")
    try:
        topics.ensure(topic, timeout=timeout)
    except PublishError as exc:
        return exc
    return None


def describe(row: OutboxRow, topic: str) -> str:
    """A row for a failure log line: outbox id (= event id), truncated key and topic."""
    return f"outbox row {row.id} (event {row.id}, key {short(row.aggregateid)}, topic {short(topic)})"


def _prepare(
    row: OutboxRow,
    for_aggregate: Callable[[str], str],
    topics: Topics,
    timeout: float,
    topic_errors: dict[str, PublishError | None],
    max_depth: int,
) -> Sent:
    topic = row.topic or ""
    try:
        topic = topic_of(row, for_aggregate)
        message = to_message(row, max_depth)
    except EnvelopeError as exc:
        return Sent(row, None, topic, RowOutcome.REJECTED, exc)
    except Exception as exc:  # one row never stops the relay: it is logged with its traceback and dead-lettered
        logger.exception("%s: unexpected error while preparing it; it is rejected", describe(row, topic))
        detail = f"could not be prepared: {type(exc).__name__}: {short(exc)}"
        return Sent(row, None, topic, RowOutcome.REJECTED, RowRejectedError(RejectReason.UNEXPECTED, row.id, detail))
    if topic not in topic_errors:  # ask Kafka once per topic and round, not once per row
        topic_errors[topic] = _check_topic(topic, topics, timeout)
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
    stopped: set[str]  # keys whose later rows the next round must not produce (see the module docstring)
    started: float  # time.monotonic() when its rows were claimed (the batch latency metric)
    span: Any = None  # the batch's tracing span (kafkaguard.tracing.spans.relay_span), when tracing is on

    @property
    def ids(self) -> list[str]:
        """The ids of the round's rows (a pipelined claim leaves them out)."""
        return [s.row.id for s in self.sent]


def start_publish(
    rows: Sequence[OutboxRow],
    *,
    producer: Producer,
    topics: Topics,
    for_aggregate: Callable[[str], str],
    timeout: float,
    block_key: bool,
    stopped: Iterable[str] = (),
    started: float,
    max_depth: int = DEFAULT_MAX_PAYLOAD_DEPTH,
    topic_limit: Callable[[str], int | None] = no_topic_limits,
) -> InFlight:
    """Produce ``rows`` (in seq order) without waiting.

    Rows of a key in ``stopped`` (held in an earlier round still in flight) or of a key held in
    this round (an earlier row failed, or is a barrier) are held back: outcome TRANSIENT without
    an error, so they stay in the outbox. ``started``: when ``rows`` were claimed. ``max_depth``:
    the payload depth limit. ``topic_limit``: topic → ``max.message.bytes`` or None if unknown
    (:class:`~kafkaguard.relay.limits.TopicLimits`).
    """
    sent: list[Sent] = []
    produced: list[Sent] = []
    outgoing: list[OutgoingMessage] = []
    held = set(stopped)
    carry: set[str] = set()
    topic_errors: dict[str, PublishError | None] = {}
    topic_names: dict[str, str] = {}  # aggregate type -> topic, worked out once per round
    barriers: dict[str, int] = {}  # topic -> barrier size, worked out once per round

    def named(aggregate_type: str) -> str:
        if aggregate_type not in topic_names:
            topic_names[aggregate_type] = for_aggregate(aggregate_type)
        return topic_names[aggregate_type]

    for row in rows:
        item = _prepare(row, named, topics, min(timeout, 10.0), topic_errors, max_depth)
        sent.append(item)
        key = row.aggregateid
        if key in held:
            item.outcome, item.error = RowOutcome.TRANSIENT, None  # held back behind an earlier row
            carry.add(key)
            continue
        msg = item.message
        if item.error is not None or msg is None:
            if key and (item.outcome is RowOutcome.TRANSIENT or block_key):
                held.add(key)
                carry.add(key)
            continue
        produced.append(item)
        outgoing.append((item.topic, msg.value, msg.key, msg.headers))
        if item.topic not in barriers:
            barriers[item.topic] = barrier_bytes(producer.max_message_bytes, topic_limit(item.topic))
        if msg.size >= barriers[item.topic]:
            logger.info("%s: %d bytes, near the size limit: its key waits for it", describe(row, item.topic), msg.size)
            held.add(key)
            carry.add(key)
    pending = producer.produce_all(outgoing, timeout)
    for index in pending.refused:  # refused inside produce(): their keys' later rows were not produced
        carry.add(produced[index].row.aggregateid)
    return InFlight(sent, produced, pending, carry, started)


def finish_publish(flight: InFlight, *, producer: Producer, timeout: float, block_key: bool) -> list[Sent]:
    """Wait for ``flight``'s delivery reports and set each row's outcome."""
    pending = flight.pending
    results = pending.wait()
    if not pending.refused and results.count(None) == len(results):
        # The common case, without the per-row branches below: every produced row acknowledged,
        # nothing rejected in a batch, so nothing to send alone.
        for item in flight.produced:
            item.outcome = RowOutcome.ACKED
        return flight.sent
    refused = set(pending.refused)
    for index, (item, error) in enumerate(zip(flight.produced, results, strict=True)):
        if error is None:
            item.outcome, item.error = RowOutcome.ACKED, None
        elif isinstance(error, KeyHeldError):
            item.outcome, item.error = RowOutcome.TRANSIENT, None  # not produced: behind a failed row of its key
        else:
            item.outcome, item.error = _classify(error), error
            # Refused inside produce(): about the record itself, sending it alone would not help.
            item.rejected_in_batch = item.outcome is RowOutcome.REJECTED and index not in refused
    _retry_rejected_alone(flight.sent, producer, timeout, block_key)
    return flight.sent


def _retry_rejected_alone(sent: list[Sent], producer: Producer, timeout: float, block_key: bool) -> None:
    """Send each broker-rejected row once more, alone, in seq order, unless its key already stopped."""
    stopped: set[str] = set()
    for item in sent:
        key = item.row.aggregateid
        if key in stopped:
            continue
        if item.rejected_in_batch and item.message is not None:
            msg = item.message
            logger.info("%s rejected in a batch; sending it alone", describe(item.row, item.topic))
            try:
                producer.send(item.topic, msg.value, key=msg.key, headers=msg.headers, timeout=timeout)
                item.outcome, item.error = RowOutcome.ACKED, None
                continue
            except PublishError as exc:
                item.outcome, item.error = _classify(exc), exc
        if key and (item.outcome is RowOutcome.TRANSIENT or (item.outcome is RowOutcome.REJECTED and block_key)):
            stopped.add(key)
