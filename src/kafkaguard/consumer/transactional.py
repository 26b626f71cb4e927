"""Kafka-to-Kafka flows with a transactional producer: consume, transform, produce, commit offsets.

For a service whose effect is *more Kafka records* (no database), the order note's settings
(``transactional.id``, idempotence, ``acks=all``) give exactly-once within Kafka: each polled batch
is handled in one Kafka transaction that contains the output records **and** the consumer's
offsets (``send_offsets_to_transaction``). Consumers reading with ``isolation.level=read_committed``
see each input's outputs exactly once, even if this process is killed at any point: an open
transaction is aborted by the broker (fenced by the next instance with the same
``transactional.id``) and the batch is consumed again.

A transform that raises a non-retriable error (per the :class:`ErrorClassifier`) or an input that
does not decode sends the input to ``<topic>.dlq`` inside the same transaction, with the original
position and the error in headers, so the partition keeps moving. A retriable error aborts the
transaction, rewinds to the committed offsets and retries after a backoff.

Services that write a database use :class:`~kafkaguard.consumer.worker.Worker` with the inbox and
emit through their own outbox instead (``ctx.emit``): that is the default path.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from kafkaguard import headers as H
from kafkaguard.consumer.kafka_source import to_record
from kafkaguard.consumer.records import Record
from kafkaguard.envelope import DecodeError, DecodeReason, Event, decode
from kafkaguard.logtext import short
from kafkaguard.policies.classify import ErrorClassifier, qualified_name
from kafkaguard.topics import dlq_topic
from kafkaguard.transports.kafka_config import consumer_config, producer_config

log = logging.getLogger("kafkaguard.consumer.transactional")

Output = tuple[str, Event]
KafkaHeaders = list[tuple[str, str | bytes | None]]
Transform = Callable[[Event], Sequence[Output]]


@dataclass
class ForwardStats:
    """Counts since start: inputs consumed, outputs produced, inputs sent to a DLQ topic, aborts."""

    consumed: int = 0
    produced: int = 0
    dead_lettered: int = 0
    aborted: int = 0


class TransactionalForwarder:
    """Runs ``transform`` over ``topics`` in group ``group_id``; one Kafka transaction per batch.

    ``transactional_id`` must be stable per instance (e.g. ``<service>-<ordinal>``): a restarted
    instance with the same id fences its predecessor's open transaction.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        transactional_id: str,
        transform: Transform,
        *,
        batch_size: int = 200,
        classifier: ErrorClassifier | None = None,
        consumer_overrides: Mapping[str, Any] | None = None,
        producer_overrides: Mapping[str, Any] | None = None,
        max_backoff: float = 10.0,
    ) -> None:
        self.transform = transform
        self.batch_size = batch_size
        self.classifier = classifier or ErrorClassifier()
        self.max_backoff = max_backoff
        self.stats = ForwardStats()
        self._topics = list(topics)
        self._consumer = Consumer(consumer_config(bootstrap, group_id, consumer_overrides))
        self._producer = Producer(
            producer_config(bootstrap, producer_overrides, **{"transactional.id": transactional_id})
        )

    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop`` is set; the batch in progress commits or aborts before returning."""
        self._producer.init_transactions(30)
        self._consumer.subscribe(self._topics)
        failures = 0
        try:
            while not stop.is_set():
                batch = [m for m in self._consumer.consume(self.batch_size, 0.5) if not m.error()]
                self._producer.poll(0)  # serves the producer's log lines and errors (kafka_logging)
                if not batch:
                    continue
                try:
                    self._forward(batch)
                    failures = 0
                except _Retry as exc:
                    failures += 1
                    self.stats.aborted += 1
                    log.warning("transaction aborted (%s); rewinding and retrying", exc)
                    self._abort_and_rewind()
                    stop.wait(min(self.max_backoff, 0.2 * 2 ** min(failures, 8)))
        finally:
            self._consumer.close()
            self._producer.flush(10)

    def _forward(self, batch: list[Message]) -> None:
        self._producer.begin_transaction()
        for msg in batch:
            for topic, event in self._outputs(to_record(msg)):
                headers: KafkaHeaders = list(event.kafka_headers())
                self._producer.produce(topic, value=event.payload_bytes(), key=event.key.encode(), headers=headers)
                self.stats.produced += 1
            self.stats.consumed += 1
        try:
            positions = self._consumer.position(self._consumer.assignment())
            self._producer.send_offsets_to_transaction(positions, self._consumer.consumer_group_metadata(), 30)
            self._producer.commit_transaction(30)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and getattr(error, "fatal", lambda: False)():
                raise
            raise _Retry(str(exc)) from exc

    def _outputs(self, msg: Record) -> Sequence[Output]:
        try:
            if msg.read_error is not None:
                raise DecodeError(DecodeReason.UNREADABLE, msg.read_error)
            event = decode(msg.key, msg.value, msg.headers)
        except DecodeError as exc:
            self._dlq(msg, exc)
            return []
        try:
            return list(self.transform(event))
        except Exception as exc:
            if self.classifier.is_retriable(exc):
                raise _Retry(f"transform of event {event.event_id} failed: {exc}") from exc
            log.error(
                "event %s (key %s) at %s sent to the DLQ topic: %s", event.event_id, short(event.key), msg.where(), exc
            )
            self._dlq(msg, exc)
            return []

    def _dlq(self, msg: Record, exc: BaseException) -> None:
        """Produce a copy of ``msg`` to ``<topic>.dlq`` (in the open transaction) with its origin and error."""
        self.stats.dead_lettered += 1
        headers: KafkaHeaders = [(k, v) for k, v in msg.headers]
        headers += [
            (H.DLQ_ORIGINAL_TOPIC, msg.topic.encode()),
            (H.DLQ_ORIGINAL_PARTITION, str(msg.partition).encode()),
            (H.DLQ_ORIGINAL_OFFSET, str(msg.offset).encode()),
            (H.DLQ_EXCEPTION_CLASS, qualified_name(type(exc)).encode()),
            (H.DLQ_EXCEPTION_MESSAGE, str(exc)[:1000].encode("utf-8", "backslashreplace")),
        ]
        self._producer.produce(dlq_topic(msg.topic), value=msg.value, key=msg.key, headers=headers)

    def _abort_and_rewind(self) -> None:
        try:
            self._producer.abort_transaction(30)
        except KafkaException as exc:
            log.warning("abort failed: %s", exc)
        assignment = self._consumer.assignment()
        if not assignment:
            return
        for tp in self._consumer.committed(assignment, timeout=30):
            offset = tp.offset if tp.offset >= 0 else -2  # -2: the beginning (no commit yet)
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))


class _Retry(Exception):
    """Abort the transaction and consume the batch again."""
