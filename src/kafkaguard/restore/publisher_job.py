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
  consumers dedupe by event id), and ``handoff`` writes the listener dead letter and the
  ``restored`` mark in one transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, text

from kafkaguard.db import columns as C
from kafkaguard.db.history import history_entry
from kafkaguard.db.locks import PUBLISHER_SCOPE
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError, Event, too_deep
from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.restore.outcome import Outcome, after_failure, after_success
from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
from kafkaguard.transports.ports import Producer

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What one run did."""

    restored: int = 0
    retried: int = 0
    failed: int = 0
    skipped_keys: int = 0
    restored_ids: list[int] = field(default_factory=list)

    def add(self, other: RunReport) -> None:
        self.restored += other.restored
        self.retried += other.retried
        self.failed += other.failed
        self.skipped_keys += other.skipped_keys
        self.restored_ids += other.restored_ids


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


def apply_outcome(conn: Connection, table: str, record_id: int, outcome: Outcome, error: BaseException | None) -> None:
    """Write ``outcome`` to record ``record_id`` of ``table`` (both dead-letter tables share these columns)."""
    restored = outcome.status is C.DeadLetterStatus.RESTORED
    err_cls = "last_error_class" if table == C.PUBLISHER_DEAD_LETTERS else "error_class"
    err_msg = "last_error_message" if table == C.PUBLISHER_DEAD_LETTERS else "error_message"
    conn.execute(
        text(
            f"UPDATE {table} SET status = :status, attempts = :attempts, next_attempt_at = :next, "  # noqa: S608
            "updated_at = now(), history = history || CAST(:entry AS jsonb), "
            "restored_at = CASE WHEN :restored THEN now() ELSE restored_at END, "
            "restored_by = CASE WHEN :restored THEN :by ELSE restored_by END"
            + (f", {err_cls} = :err_cls, {err_msg} = :err_msg" if error is not None else "")
            + " WHERE id = :id"
        ),
        {
            "status": outcome.status.value,
            "attempts": outcome.attempts,
            "next": outcome.next_attempt_at,
            "entry": json.dumps([outcome.history_entry], default=str),
            "restored": restored,
            "by": outcome.history_entry.get("by"),
            "err_cls": type(error).__name__ if error is not None else None,
            "err_msg": str(error)[:2000] if error is not None else None,
            "id": record_id,
        },
    )


DUE_KEYS_SQL = f"""
SELECT id, key FROM {C.PUBLISHER_DEAD_LETTERS} d
WHERE status = 'pending' AND next_attempt_at <= now()
  AND (key IS NULL OR NOT EXISTS (SELECT 1 FROM {C.PUBLISHER_DEAD_LETTERS} e
                                  WHERE e.key = d.key AND e.id < d.id AND e.status IN ('pending', 'failed')))
ORDER BY id LIMIT :limit
"""  # noqa: S608 - table names are constants
"""Due heads (id, key): the oldest open record of each key, and every due record without a key."""

RECORD_COLUMNS = (
    "id, event_id, key, type, aggregate_type, topic, payload::text AS payload, headers::text AS headers,"
    " CASE WHEN occurred_at BETWEEN '0001-01-02' AND '9999-12-30' THEN occurred_at END AS occurred_at,"
    " schema_version, source, status, attempts, next_attempt_at, last_error_class, last_error_message,"
    " created_at, updated_at"
)
"""A record's columns as the job reads them: JSON as text (decoded after a depth check, never by the
driver, whose json.loads recurses), timestamps outside Python's range as NULL (the driver raises)."""

KEY_RECORDS_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE key = :key AND status IN ('pending', 'failed') ORDER BY id FOR UPDATE
"""  # noqa: S608

KEYLESS_RECORD_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE id = :id AND key IS NULL AND status = 'pending' FOR UPDATE SKIP LOCKED
"""  # noqa: S608
"""One keyless record, unless another run holds it (then it is skipped, like a locked key)."""

KEYLESS_DUE_SQL = f"""
SELECT id FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE key IS NULL AND status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT :limit
"""  # noqa: S608


class PublisherRestoreJob:
    """Processes due publisher dead letters by the configured strategy.

    Build one with :meth:`from_settings`; the constructor takes the ports for tests and custom wiring.
    """

    @classmethod
    def from_settings(
        cls, settings: KafkaguardSettings, engine: Engine | None = None, *, listener_engine: Engine | None = None
    ) -> PublisherRestoreJob:
        """The job of ``settings.restore`` over the publisher dead letters in ``engine`` (default: an
        engine of ``settings.database_url`` and ``settings.db_schema``, disposed by :meth:`close`).

        ``republish`` gets a producer for ``settings.bootstrap_servers`` (acks within
        ``relay.delivery_timeout``) and creates a missing topic as ``settings.topics`` says;
        ``handoff`` writes to ``listener_engine`` (default ``engine``) for ``restore.handoff_group``.
        Run it with :meth:`run_once`; :meth:`close` flushes the producer.
        """
        from kafkaguard.db.engine import sync_engine
        from kafkaguard.transports.kafka_delivery import DeliveryProducer
        from kafkaguard.transports.kafka_topics import TopicRegistry

        owned = None
        if engine is None:
            if not settings.database_url:
                raise ConfigurationError("a database URL is needed (KAFKAGUARD_DATABASE_URL or database_url=...)")
            engine = owned = sync_engine(settings.database_url, schema=settings.db_schema)
        if settings.restore.publisher_strategy is not PublisherStrategy.REPUBLISH:
            job = cls(engine, settings.restore, listener_engine=listener_engine)
        else:
            producer = DeliveryProducer(
                settings.bootstrap_servers, message_timeout=settings.relay.delivery_timeout, overrides=settings.producer
            )
            # Dead letters made while Kafka was down may name a topic that was never created.
            topics = TopicRegistry(
                settings.bootstrap_servers,
                partitions=settings.topics.partitions,
                replication=settings.topics.replication,
                create_missing=settings.topics.create_missing,
                overrides=settings.producer,
            )
            job = cls(
                engine, settings.restore, producer=producer, listener_engine=listener_engine, ensure_topic=topics.ensure
            )
        job._owned_engine = owned
        return job

    def __init__(
        self,
        engine: Engine,
        settings: RestoreSettings,
        *,
        producer: Producer | None = None,
        topic_for: Callable[[dict[str, Any]], str] | None = None,
        listener_engine: Engine | None = None,
        ensure_topic: Callable[[str], None] | None = None,
    ) -> None:
        """``listener_engine``: where ``handoff`` writes listener dead letters (the consuming service's
        database or schema); defaults to ``engine``. Across two databases the handoff is idempotent
        rather than atomic: the listener row is written first (``ON CONFLICT DO NOTHING`` on its
        position), then the publisher record is marked, so a crash in between repeats harmlessly."""
        if settings.publisher_strategy is PublisherStrategy.REPUBLISH and producer is None:
            raise ConfigurationError("the republish strategy needs a Kafka producer")
        if settings.publisher_strategy is PublisherStrategy.HANDOFF and not settings.handoff_group:
            raise ConfigurationError("the handoff strategy needs restore.handoff_group (the consumer group to hand to)")
        self.engine = engine
        self.settings = settings
        self.producer = producer
        self.topic_for = topic_for or (lambda row: str(row["topic"]))
        self.listener_engine = listener_engine
        self.ensure_topic = ensure_topic
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
        with self.engine.connect() as conn:
            heads = conn.execute(text(DUE_KEYS_SQL), {"limit": limit or self.settings.batch_size}).all()
        keys = dict.fromkeys(key for _, key in heads if key is not None)
        for record_id, key in heads:
            if key is None:
                report.add(self.process_record(int(record_id)))
        for key in keys:
            report.add(self.process_key(key))
        return report

    def process_key(self, key: str | None) -> RunReport:
        """Process the due records of ``key`` in id order, stopping at the first failure.

        ``key`` None: every due record without a key, each on its own (:meth:`process_record`).
        """
        if key is None:
            report = RunReport()
            with self.engine.connect() as conn:
                ids = [int(r[0]) for r in conn.execute(text(KEYLESS_DUE_SQL), {"limit": self.settings.batch_size})]
            for record_id in ids:
                report.add(self.process_record(record_id))
            return report
        report = RunReport()
        with self.engine.begin() as conn:
            locked = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:scope), hashtext(:key))"),
                {"scope": PUBLISHER_SCOPE, "key": key},
            ).scalar_one()
            if not locked:
                report.skipped_keys += 1
                return report
            now = datetime.now(UTC)
            for row in conn.execute(text(KEY_RECORDS_SQL), {"key": key}).mappings().all():
                if row["status"] != "pending" or row["next_attempt_at"] > now:
                    break  # the head is not due, or needs an operator: the rest of the key waits
                if not self._attempt(conn, dict(row), now, report):
                    break
        return report

    def process_record(self, record_id: int) -> RunReport:
        """Process one due record without a key (skipped if another run holds it or it is not due)."""
        report = RunReport()
        with self.engine.begin() as conn:
            row = conn.execute(text(KEYLESS_RECORD_SQL), {"id": record_id}).mappings().first()
            if row is None:
                report.skipped_keys += 1  # held by another run, restored meanwhile, or not keyless
                return report
            now = datetime.now(UTC)
            if row["next_attempt_at"] <= now:
                self._attempt(conn, dict(row), now, report)
        return report

    def _attempt(self, conn: Connection, row: dict[str, Any], now: datetime, report: RunReport) -> bool:
        """Restore one record and record the outcome on it; return whether it was restored."""
        try:
            how = self._restore(conn, row)
        except Exception as exc:  # noqa: BLE001 - any failure is recorded on the record
            outcome = after_failure(row["attempts"], exc, self.settings.policy, now, self._how())
            apply_outcome(conn, C.PUBLISHER_DEAD_LETTERS, row["id"], outcome, exc)
            log.warning(
                "restore of publisher dead letter %s (event %s, key %s, topic %s) failed: %s",
                row["id"], row["event_id"], short(row["key"]), short(row["topic"]), short(exc, 500),
            )  # fmt: skip
            if outcome.status is C.DeadLetterStatus.FAILED:
                report.failed += 1
            else:
                report.retried += 1
            return False
        apply_outcome(conn, C.PUBLISHER_DEAD_LETTERS, row["id"], after_success(row["attempts"], now, how), None)
        report.restored += 1
        report.restored_ids.append(int(row["id"]))
        return True

    def _how(self) -> str:
        return self.settings.publisher_strategy.value

    def _restore(self, conn: Connection, row: dict[str, Any]) -> str:
        event = record_event(row)
        if self.settings.publisher_strategy is PublisherStrategy.HANDOFF:
            if self.listener_engine is None:
                handoff(conn, row, event, str(self.settings.handoff_group))
            else:
                with self.listener_engine.begin() as target:
                    handoff(target, row, event, str(self.settings.handoff_group))
            return "handoff"
        assert self.producer is not None
        topic = self.topic_for(row)
        if self.ensure_topic is not None:
            self.ensure_topic(topic)
        self.producer.send(topic, event.payload_bytes(), key=event.key.encode(), headers=event.kafka_headers())
        return "republish"


def handoff(conn: Connection, row: dict[str, Any], event: Event, group: str) -> None:
    """Turn a publisher dead letter into a pending listener dead letter of ``group`` (dailyfeed's batch).

    The listener row has partition -1 and offset = -(publisher record id): it never came from Kafka.
    """
    conn.execute(
        text(
            f'INSERT INTO {C.LISTENER_DEAD_LETTERS} (consumer_group, topic, partition, "offset", key, raw_key, '  # noqa: S608
            "headers, raw_value, event_id, type, reason, status, next_attempt_at, history) VALUES "
            "(:group, :topic, -1, :offset, :key, :raw_key, CAST(:headers AS jsonb), :raw_value, :event_id, :type, "
            "'handoff', 'pending', now(), CAST(:history AS jsonb)) "
            "ON CONFLICT ON CONSTRAINT uq_listener_dl_position DO NOTHING"
        ),
        {
            "group": group,
            "topic": row["topic"],
            "offset": -int(row["id"]),
            "key": event.key,
            "raw_key": event.key.encode(),
            "headers": json.dumps({k: v.decode() for k, v in event.kafka_headers()}),
            "raw_value": event.payload_bytes(),
            "event_id": event.event_id,
            "type": event.type,
            "history": json.dumps([history_entry("handoff", by="handoff", publisher_dead_letter=row["id"])]),
        },
    )
