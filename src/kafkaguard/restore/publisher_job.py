"""The publisher restore job: due publisher dead letters back to Kafka, or handed to the listener store.

Guarantees:
- Per-key order: for each key, records are processed in id order, and a key's later records wait
  while an earlier one is not restored (a failure ends that key's turn for this run).
- A record without a key (key NULL: an outbox row with an empty aggregate id) is its own
  sequence: it is retried as itself (it is still no event, so it fails again and follows the retry
  policy to ``failed``), is never published under an invented key, and neither blocks nor waits
  for any other record.
- Totality: records are read with their payload and headers as text and decoded here only after a
  depth check (:data:`~kafkaguard.envelope.DEFAULT_MAX_PAYLOAD_DEPTH`), and timestamps Python
  cannot hold are read as NULL, so no record can fail the read of its key's records; such a
  record's attempt fails and is recorded on it.
- Two runs at the same time never process the same key: each key is processed in its own
  transaction holding ``pg_try_advisory_xact_lock`` on (publisher scope, key); a run that cannot
  take it skips the key.
- A run killed mid-way loses nothing: a record is marked ``restored`` only in the transaction
  that commits after the broker acknowledged it (a kill in between republishes it next time;
  consumers dedupe by event id), and ``handoff`` into the same database writes the listener
  dead letter and the ``restored`` mark in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import use_span
from sqlalchemy import Engine

from kafkaguard.db import columns as C
from kafkaguard.db.history import history_entry
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError, Event, too_deep
from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.restore.outcome import after_failure, after_success
from kafkaguard.restore.report import RunReport
from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
from kafkaguard.stores import listener_dead_letters as LDL
from kafkaguard.stores.by_database import consumer_store_for, publisher_dead_letters_for
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.publisher_dead_letters import (
    HeldRecords,
    PublisherDeadLetterStore,
    SqlHeldRecords,
)
from kafkaguard.tracing import spans
from kafkaguard.transports.ports import Producer

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

log = logging.getLogger(__name__)


def _json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` (JSON text as read by :data:`RECORD_COLUMNS`, or already decoded) as a JSON object."""
    if isinstance(value, str):
        if value[:1] != "{":
            raise EnvelopeError(f"the dead letter's {what} is not a JSON object")
        if too_deep(value, DEFAULT_MAX_PAYLOAD_DEPTH):
            raise EnvelopeError(
                f"too_deep: the dead letter's {what} nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels"
            )
        value = json.loads(value)
    if not isinstance(value, dict):
        raise EnvelopeError(f"the dead letter's {what} is not a JSON object")
    return value


def record_event(row: dict[str, Any]) -> Event:
    """The event stored in a publisher dead-letter row; raise EnvelopeError if it is none.

    A record with key NULL raises (an event needs a key): it is never sent under an invented one.
    """
    if row["occurred_at"] is None:
        raise EnvelopeError("the dead letter's occurred_at is outside the years 1-9999")
    headers = _json_object(row["headers"], "headers") if row["headers"] is not None else {}
    return Event(
        type=row["type"],
        key=row["key"],
        payload=_json_object(row["payload"], "payload"),
        aggregate_type=row["aggregate_type"],
        event_id=row["event_id"],
        occurred_at=row["occurred_at"],
        schema_version=row["schema_version"],
        headers={str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()},
    )


Handoff = Callable[[HeldRecords, dict[str, Any], Event], None]
"""Hands one record's event to the listener store, inside (or beside) the record's held transaction."""


class PublisherRestoreJob:
    """Processes due publisher dead letters by the configured strategy.

    Build one with :meth:`from_settings`; the constructor takes the ports for tests and custom wiring.
    """

    @classmethod
    def from_settings(
        cls, settings: KafkaguardSettings, engine: Engine | None = None, *, listener_engine: Engine | None = None
    ) -> PublisherRestoreJob:
        """The job of ``settings.restore`` over the publisher dead letters in ``engine`` (default: an
        engine of ``settings.database_url`` and ``settings.db_schema``, disposed by :meth:`close`; a
        ``mongodb://`` URL gives the document store's collection, and a handoff the consumer store
        in the same database).

        ``republish`` gets a producer for ``settings.bootstrap_servers`` (acks within
        ``relay.delivery_timeout``) and creates a missing topic as ``settings.topics`` says;
        ``handoff`` writes to ``listener_engine`` (default ``engine``) for ``restore.handoff_group``.
        Run it with :meth:`run_once`; :meth:`close` flushes the producer.
        """
        from kafkaguard.db.engine import sync_engine
        from kafkaguard.stores.mongo_documents import is_mongo_url
        from kafkaguard.transports.kafka_delivery import DeliveryProducer
        from kafkaguard.transports.kafka_topics import TopicRegistry

        owned = None
        store: PublisherDeadLetterStore | Engine
        listener_store: ConsumerStore | None = None
        if engine is None and is_mongo_url(settings.database_url):
            # The document store: the records in its collection; a handoff goes to the consumer
            # store of the same database (the dailyfeed shape: both services' stores in one place).
            from kafkaguard.stores.mongo_consumer import MongoConsumerStore
            from kafkaguard.stores.mongo_publisher_dead_letters import MongoPublisherDeadLetters

            store = MongoPublisherDeadLetters.from_url(settings.database_url)
            if settings.restore.publisher_strategy is PublisherStrategy.HANDOFF and listener_engine is None:
                listener_store = MongoConsumerStore(store.db)
                listener_store.ensure_indexes()
        else:
            if engine is None:
                if not settings.database_url:
                    raise ConfigurationError("a database URL is needed (KAFKAGUARD_DATABASE_URL or database_url=...)")
                engine = owned = sync_engine(settings.database_url, schema=settings.db_schema)
            store = engine
        if settings.restore.publisher_strategy is not PublisherStrategy.REPUBLISH:
            job = cls(store, settings.restore, listener_engine=listener_engine, listener_store=listener_store)
        else:
            producer = DeliveryProducer(
                settings.bootstrap_servers,
                message_timeout=settings.relay.delivery_timeout,
                overrides=settings.kafka_producer_overrides(),
            )
            # Dead letters made while Kafka was down may name a topic that was never created.
            topics = TopicRegistry.from_settings(settings)
            job = cls(
                store, settings.restore, producer=producer, listener_engine=listener_engine, ensure_topic=topics.ensure
            )
        job._owned_engine = owned
        return job

    def __init__(
        self,
        store: PublisherDeadLetterStore | Engine,
        settings: RestoreSettings,
        *,
        producer: Producer | None = None,
        topic_for: Callable[[dict[str, Any]], str] | None = None,
        listener_engine: Engine | None = None,
        listener_store: ConsumerStore | None = None,
        ensure_topic: Callable[[str], None] | None = None,
        hand_off: Handoff | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``store``: the publisher dead-letter store (an :class:`~sqlalchemy.Engine` is taken as its
        PostgreSQL adapter). ``producer``: for ``republish``. ``hand_off``: for ``handoff`` (default:
        :class:`StoreHandoff` through ``listener_store``, the consuming service's store, or
        ``listener_engine`` taken as its PostgreSQL store, or into the publisher store's own
        transaction when both are None). ``clock``: now, to decide which records are
        due and when the next attempt is (give a fake store's clock to the job too). Across two databases the handoff is
        idempotent rather than atomic: the listener row is written first (``ON CONFLICT DO
        NOTHING`` on its position), then the publisher record is marked, so a crash in between
        repeats harmlessly."""
        if settings.publisher_strategy is PublisherStrategy.REPUBLISH and producer is None:
            raise ConfigurationError("the republish strategy needs a Kafka producer")
        if settings.publisher_strategy is PublisherStrategy.HANDOFF and not settings.handoff_group:
            raise ConfigurationError("the handoff strategy needs restore.handoff_group (the consumer group to hand to)")
        self.store: PublisherDeadLetterStore = publisher_dead_letters_for(store) if isinstance(store, Engine) else store
        self.settings = settings
        self.producer = producer
        self.topic_for = topic_for or (lambda row: str(row["topic"]))
        self.ensure_topic = ensure_topic
        if listener_store is None and listener_engine is not None:
            listener_store = consumer_store_for(listener_engine)
        self.hand_off = hand_off or StoreHandoff(str(settings.handoff_group or ""), listener_store)
        self.clock = clock
        self._owned_engine: Engine | None = None

    def close(self) -> None:
        """Flush and close the producer (republish) and dispose the engine :meth:`from_settings` made."""
        if self.producer is not None:
            self.producer.close()
        if self._owned_engine is not None:
            self._owned_engine.dispose()

    def run_once(self, *, limit: int | None = None) -> RunReport:
        """Process every key whose head is due (at most ``limit`` keys); return what happened."""
        report = RunReport()
        heads = self.store.due_heads(limit or self.settings.batch_size)
        keys = dict.fromkeys(key for _, key in heads if key is not None)
        for record_id, key in heads:
            if key is None:
                report.add(self.process_record(record_id))
        for key in keys:
            report.add(self.process_key(key))
        return report

    def process_key(self, key: str | None) -> RunReport:
        """Process the due records of ``key`` in id order, stopping at the first failure.

        ``key`` None: every due record without a key, each on its own (:meth:`process_record`).
        """
        report = RunReport()
        if key is None:
            for record_id in self.store.due_keyless(self.settings.batch_size):
                report.add(self.process_record(record_id))
            return report
        with self.store.hold_key(key) as held:
            if held is None:
                report.skipped_keys += 1
                return report
            now = self.clock()
            for row in held.records:
                if row["status"] != C.DeadLetterStatus.PENDING.value or row["next_attempt_at"] > now:
                    break  # the head is not due, or needs an operator: the rest of the key waits
                if not self._attempt(held, row, now, report):
                    break
        return report

    def process_record(self, record_id: int) -> RunReport:
        """Process one due record without a key (skipped if another run holds it or it is not due)."""
        report = RunReport()
        with self.store.hold_keyless(record_id) as held:
            if held is None or not held.records:
                report.skipped_keys += 1  # held by another run, restored meanwhile, or not keyless
                return report
            now = self.clock()
            row = held.records[0]
            if row["next_attempt_at"] <= now:
                self._attempt(held, row, now, report)
        return report

    def _attempt(self, held: HeldRecords, row: dict[str, Any], now: datetime, report: RunReport) -> bool:
        """Restore one record and record the outcome on it; return whether it was restored.

        With tracing on, in a ``restore <topic>`` span linked to the trace the event was created in
        (its stored ``traceparent``, which the republished message keeps)."""
        if not spans.active():
            return self._attempt_now(held, row, now, report)
        span = spans.restore_span(
            store="publisher", dead_letter_id=int(row["id"]), topic=row.get("topic"), key=row.get("key"),
            headers=spans.restore_headers(row.get("headers")),
        )  # fmt: skip
        try:
            with use_span(span, end_on_exit=False):
                restored = self._attempt_now(held, row, now, report)
        except BaseException as exc:
            spans.finish(span, "failed", error=exc)
            raise
        spans.finish(span, "restored" if restored else "failed", failed=not restored)
        return restored

    def _attempt_now(self, held: HeldRecords, row: dict[str, Any], now: datetime, report: RunReport) -> bool:
        try:
            how = self._restore(held, row)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the record
            outcome = after_failure(row["attempts"], exc, self.settings.policy, now, self._how())
            held.record_outcome(row["id"], outcome, exc)
            log.warning(
                "restore of publisher dead letter %s (event %s, key %s, topic %s) failed: %s",
                row["id"], row["event_id"], short(row["key"]), short(row["topic"]), short(exc, 500),
            )  # fmt: skip
            if outcome.status is C.DeadLetterStatus.FAILED:
                report.failed += 1
            else:
                report.retried += 1
            return False
        held.record_outcome(row["id"], after_success(row["attempts"], now, how), None)
        report.restored += 1
        report.restored_ids.append(int(row["id"]))
        return True

    def _how(self) -> str:
        return self.settings.publisher_strategy.value

    def _restore(self, held: HeldRecords, row: dict[str, Any]) -> str:
        event = record_event(row)
        if self.settings.publisher_strategy is PublisherStrategy.HANDOFF:
            self.hand_off(held, row, event)
            return "handoff"
        assert self.producer is not None
        topic = self.topic_for(row)
        if self.ensure_topic is not None:
            self.ensure_topic(topic)
        self.producer.send(topic, event.payload_bytes(), key=event.key.encode(), headers=event.kafka_headers())
        return "republish"


class StoreHandoff:
    """The default ``hand_off``: the record's listener dead letter (:func:`handoff_row`) written
    through the listener store, the one writer of ``kafka_listener_dead_letters``.

    With ``listener_store`` (the consuming service's store) the row is inserted in a transaction
    of that store; without it, into the publisher store's own transaction (atomic with the
    ``restored`` mark; needs the PostgreSQL publisher store), by the same statement
    (:func:`kafkaguard.stores.listener_dead_letters.insert_dead_letter`). Either way the insert
    is ``ON CONFLICT DO NOTHING`` on the row's position, so a repeated handoff writes nothing.
    """

    def __init__(self, group: str, listener_store: ConsumerStore | None = None) -> None:
        self.group = group
        self.listener_store = listener_store

    def __call__(self, held: HeldRecords, row: dict[str, Any], event: Event) -> None:
        """Write the listener dead letter of ``row``."""
        dead_letter = handoff_row(row, event, self.group)
        if self.listener_store is not None:
            with self.listener_store.transaction() as tx:
                tx.insert_dead_letter(dead_letter)
        elif isinstance(held, SqlHeldRecords):
            held.connection.execute(LDL.insert_dead_letter(dead_letter))
        else:
            raise ConfigurationError("the handoff strategy over this store needs listener_store= or hand_off=")


def handoff_row(row: dict[str, Any], event: Event, group: str) -> dict[str, Any]:
    """The pending listener dead letter of ``group`` that publisher dead letter ``row`` becomes
    (dailyfeed's batch).

    The listener row has partition -1 and offset = -(publisher record id): it never came from
    Kafka, and its position is unique per publisher record.
    """
    return {
        "consumer_group": group,
        "topic": row["topic"],
        "partition": -1,
        "offset": -int(row["id"]),
        "key": event.key,
        "raw_key": event.key.encode(),
        "headers": {k: v.decode() for k, v in event.kafka_headers()},
        "raw_value": event.payload_bytes(),
        "raw_headers": None,  # the event's headers are all text: ``headers`` holds them exactly
        "event_id": event.event_id,
        "type": event.type,
        "reason": "handoff",
        "status": C.DeadLetterStatus.PENDING.value,
        "attempts": 0,
        "history": [history_entry("handoff", by="handoff", publisher_dead_letter=row["id"])],
    }
