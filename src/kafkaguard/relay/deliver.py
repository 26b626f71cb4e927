"""Publish one round's claimed rows and decide each row's fate (the relay's Kafka side).

Guarantees: a row is reported acknowledged only on the broker's delivery report; rows of a key
that already failed in this round are not produced (nothing overtakes a failed row); a row the
broker rejected inside a batch is sent once more on its own before it is called rejected, since a
broker refuses a whole batch when the batch (not the record) is too large.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kafkaguard.envelope import EnvelopeError, Event
from kafkaguard.errors import EventRejectedError, KafkaUnavailableError, PublishError
from kafkaguard.relay.plan import Outcome
from kafkaguard.relay.rows import OutboxRow, fallback_event, to_event, topic_of
from kafkaguard.transports.kafka_delivery import Delivered, DeliveryProducer
from kafkaguard.transports.kafka_topics import TopicRegistry

logger = logging.getLogger(__name__)


@dataclass
class Sent:
    """One row's event, topic and outcome (``error`` set unless acknowledged)."""

    row: OutboxRow
    event: Event
    topic: str
    outcome: Outcome = Outcome.TRANSIENT
    error: BaseException | None = None
    rejected_in_batch: bool = False


def _classify(exc: BaseException) -> Outcome:
    return Outcome.REJECTED if isinstance(exc, EventRejectedError | EnvelopeError) else Outcome.TRANSIENT


def _prepare(
    row: OutboxRow,
    for_aggregate: Callable[[str], str],
    topics: TopicRegistry,
    timeout: float,
    topic_errors: dict[str, PublishError | None],
) -> Sent:
    try:
        event = to_event(row)
    except EnvelopeError as exc:
        return Sent(row, fallback_event(row), topic_of(row, for_aggregate), Outcome.REJECTED, exc)
    topic = topic_of(row, for_aggregate)
    if topic not in topic_errors:  # ask Kafka once per topic and round, not once per row
        try:
            topics.ensure(topic, timeout=timeout)
            topic_errors[topic] = None
        except PublishError as exc:
            topic_errors[topic] = exc
    error = topic_errors[topic]
    if error is not None:
        return Sent(row, event, topic, _classify(error), error)
    return Sent(row, event, topic)


def publish_rows(
    rows: Sequence[OutboxRow],
    *,
    producer: DeliveryProducer,
    topics: TopicRegistry,
    for_aggregate: Callable[[str], str],
    timeout: float,
    block_key: bool,
) -> list[Sent]:
    """Produce ``rows`` (in seq order) and wait up to ``timeout`` s for every delivery report."""
    sent: list[Sent] = []
    futures: dict[int, concurrent.futures.Future[Delivered]] = {}
    stopped: set[str] = set()
    topic_errors: dict[str, PublishError | None] = {}
    for row in rows:
        item = _prepare(row, for_aggregate, topics, min(timeout, 10.0), topic_errors)
        sent.append(item)
        if row.aggregateid in stopped:
            item.outcome, item.error = Outcome.TRANSIENT, None  # held back behind an earlier row
            continue
        if item.error is not None:
            if item.outcome is Outcome.TRANSIENT or block_key:
                stopped.add(row.aggregateid)
            continue
        ev = item.event
        futures[len(sent) - 1] = producer.submit(
            item.topic, ev.payload_bytes(), key=ev.key.encode(), headers=ev.kafka_headers()
        )
    concurrent.futures.wait(list(futures.values()), timeout=timeout + 2)
    for index, future in futures.items():
        item = sent[index]
        if not future.done():
            item.outcome, item.error = Outcome.TRANSIENT, KafkaUnavailableError("no delivery report in time")
            continue
        exc = future.exception()
        item.outcome, item.error = (Outcome.ACKED, None) if exc is None else (_classify(exc), exc)
        item.rejected_in_batch = item.outcome is Outcome.REJECTED
    _retry_rejected_alone(sent, producer, timeout, block_key)
    return sent


def _retry_rejected_alone(sent: list[Sent], producer: DeliveryProducer, timeout: float, block_key: bool) -> None:
    """Send each broker-rejected row once more, alone, in seq order, unless its key already stopped."""
    stopped: set[str] = set()
    for item in sent:
        key = item.row.aggregateid
        if key in stopped:
            continue
        if item.rejected_in_batch:
            ev = item.event
            logger.info("event %s (key %s) rejected by %s in a batch; sending it alone", ev.event_id, key, item.topic)
            try:
                producer.send(
                    item.topic, ev.payload_bytes(), key=ev.key.encode(), headers=ev.kafka_headers(), timeout=timeout
                )
                item.outcome, item.error = Outcome.ACKED, None
                continue
            except PublishError as exc:
                item.outcome, item.error = _classify(exc), exc
        if item.outcome is Outcome.TRANSIENT or (item.outcome is Outcome.REJECTED and block_key):
            stopped.add(key)
