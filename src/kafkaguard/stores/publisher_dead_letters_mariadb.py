"""The publisher dead-letter store on MariaDB: the PostgreSQL adapter's guarantees with MariaDB's SQL.

- An insert is idempotent per event (``ON DUPLICATE KEY UPDATE`` on the unique event id: a repeat
  changes nothing; not ``INSERT IGNORE``, which would turn a data refusal into a warning).
- A writer stores the row in the transaction it is given: InnoDB is transactional, so ``direct``
  mode's "dead letter in the business transaction" holds on MariaDB as on PostgreSQL.
- A restore run holds a key with a **named lock** (``GET_LOCK(..., 0)``, never waiting) for the block
  that reads its records ``FOR UPDATE`` and writes their outcomes, then releases it; the server frees
  it if the run's connection dies. Another run asking meanwhile gets None and skips the key.

Timestamps are ``DATETIME(6)`` in UTC (every kafkaguard connection sets ``time_zone = '+00:00'``),
read back as aware UTC values, so the restore job compares them with its clock as on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.dialects.mysql import insert

from kafkaguard.db import columns as C
from kafkaguard.db.columns import PublishSource
from kafkaguard.db.locks import PUBLISHER_SCOPE
from kafkaguard.db.tables import publisher_dead_letters
from kafkaguard.envelope import Event
from kafkaguard.stores.publisher_dead_letters import SqlPublisherDeadLetters, Writer, dead_letter_values, outcome_params
from kafkaguard.stores.restore_decision import RestoreDecision

_T = C.PUBLISHER_DEAD_LETTERS
KEY_HELD_SQL = f"SELECT 1 FROM {_T} WHERE `key` = :key AND status IN ('pending', 'failed') LIMIT 1"  # noqa: S608
DUE_KEYS_SQL = f"""
SELECT id, `key` FROM {_T} d
WHERE status = 'pending' AND next_attempt_at <= UTC_TIMESTAMP(6)
  AND (`key` IS NULL OR NOT EXISTS (SELECT 1 FROM {_T} e
                                    WHERE e.`key` = d.`key` AND e.id < d.id AND e.status IN ('pending', 'failed')))
ORDER BY id LIMIT :limit
"""  # noqa: S608 - table names are constants
RECORD_COLUMNS = (
    "id, event_id, `key`, type, aggregate_type, topic, payload, headers, occurred_at,"
    " schema_version, source, status, attempts, next_attempt_at, last_error_class, last_error_message,"
    " created_at, updated_at"
)
# FORCE INDEX: on a small table InnoDB prefers a full scan, and a locking read locks every row it
# scans, so a run holding one key would block every other key's run (up to the lock wait timeout).
KEY_RECORDS_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {_T} FORCE INDEX (ix_publisher_dl_key)
WHERE `key` = :key AND status IN ('pending', 'failed') ORDER BY id FOR UPDATE
"""  # noqa: S608
KEYLESS_RECORD_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {_T} WHERE id = :id AND `key` IS NULL AND status = 'pending' FOR UPDATE SKIP LOCKED
"""  # noqa: S608
KEYLESS_DUE_SQL = f"""
SELECT id FROM {_T} WHERE `key` IS NULL AND status = 'pending' AND next_attempt_at <= UTC_TIMESTAMP(6)
ORDER BY id LIMIT :limit
"""  # noqa: S608
OUTCOME_SQL = f"""
UPDATE {_T} SET status = :status, attempts = :attempts, next_attempt_at = :next,
  updated_at = UTC_TIMESTAMP(6), history = JSON_MERGE_PRESERVE(history, :entry),
  restored_at = CASE WHEN :restored THEN UTC_TIMESTAMP(6) ELSE restored_at END,
  restored_by = CASE WHEN :restored THEN :by ELSE restored_by END,
  last_error_class = COALESCE(:err_cls, last_error_class), last_error_message = COALESCE(:err_msg, last_error_message)
WHERE id = :id
"""  # noqa: S608


def utc_naive(value: datetime | None) -> datetime | None:
    """An aware ``value`` as the UTC wall time a ``DATETIME(6)`` column holds (naive values are UTC already)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def utc_record(row: Any) -> dict[str, Any]:
    """A record read back as the other stores give it: its ``DATETIME(6)`` values made aware (UTC),
    the event id (``CHAR(36)``) a :class:`uuid.UUID`."""
    record = dict(row)
    for name, value in record.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            record[name] = value.replace(tzinfo=UTC)
    if isinstance(record.get("event_id"), str):
        record["event_id"] = uuid.UUID(record["event_id"])
    return record


def key_lock_name(scope: str, key: str) -> str:
    """A named lock of at most 64 characters for ``key`` under ``scope`` (a hash: keys are any text)."""
    digest = hashlib.sha256(f"{scope}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return f"kafkaguard.key:{digest}"


@contextmanager
def named_lock(conn: Connection, name: str) -> Iterator[bool]:
    """Whether ``conn`` took the named lock ``name`` (never waits); released when the block ends."""
    taken = conn.execute(text("SELECT GET_LOCK(:name, 0)"), {"name": name}).scalar_one() == 1
    conn.commit()  # end the autobegun transaction: the lock is the connection's, the block begins its own
    try:
        yield taken
    finally:
        if taken:
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            conn.commit()


class MariaDbHeldRecords:
    """:class:`~kafkaguard.stores.publisher_dead_letters.HeldRecords` inside one MariaDB transaction."""

    def __init__(self, connection: Connection, records: list[dict[str, Any]]) -> None:
        self.connection = connection
        self.records = records

    def record_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        """See :meth:`HeldRecords.record_outcome`."""
        params = outcome_params(record_id, outcome, error)
        params["next"] = utc_naive(params["next"])
        self.connection.execute(text(OUTCOME_SQL), params)


def add_dead_letter(
    session: Writer, event: Event, *, topic: str, source: PublishSource, error: BaseException, attempts: int = 1
) -> None:
    """Insert a publisher dead letter in the transaction of ``session`` (idempotent per event_id)."""
    values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
    statement = insert(publisher_dead_letters).values(**values)
    session.execute(statement.on_duplicate_key_update(event_id=statement.inserted.event_id))


class MariaDbPublisherDeadLetters(SqlPublisherDeadLetters):
    """The publisher dead-letter store and writer on a SQLAlchemy engine on MariaDB (module docstring);
    the writer and the due reads are the shared ones, in MariaDB's SQL."""

    due_keys_sql = DUE_KEYS_SQL
    keyless_due_sql = KEYLESS_DUE_SQL

    @contextmanager
    def hold_key(self, key: str) -> Iterator[MariaDbHeldRecords | None]:
        """The open records of ``key`` under its named lock, or None if another run holds it."""
        with self.engine.connect() as conn, named_lock(conn, key_lock_name(PUBLISHER_SCOPE, key)) as taken:
            if not taken:
                yield None
                return
            with conn.begin():
                rows = conn.execute(text(KEY_RECORDS_SQL), {"key": key}).mappings().all()
                yield MariaDbHeldRecords(conn, [utc_record(r) for r in rows])

    @contextmanager
    def hold_keyless(self, record_id: int) -> Iterator[MariaDbHeldRecords | None]:
        """The pending keyless record ``record_id``, or None (held by another run, or gone)."""
        with self.engine.begin() as conn:
            row = conn.execute(text(KEYLESS_RECORD_SQL), {"id": record_id}).mappings().first()
            yield None if row is None else MariaDbHeldRecords(conn, [utc_record(row)])
