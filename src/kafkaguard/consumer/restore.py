"""Restore listener dead letters: re-run the handler for a key's open dead letters, in order.

This is the function the ``listener`` restore job calls (scheduled or once).

Guarantees:
- Serialised with the consumer: everything happens in one transaction holding the key's advisory
  lock (scope = consumer group), the lock the consumer takes before deciding "is K blocked?". A
  message of K that arrives meanwhile waits for the lock, then sees K free (applied after the
  restored ones) or still blocked (parked behind them).
- Order: the key's open rows (``pending``, ``failed``, ``parked``) are applied in ``id`` order
  (= arrival order), each in a savepoint, through the same inbox path as the consumer (a
  duplicate is skipped but still marked restored). The first failure stops the run: that row gets
  ``attempts + 1``, its error, a history entry, ``next_attempt_at`` from the policy and status
  ``pending`` (``failed`` once ``max_attempts`` is reached); the rows after it stay as they were.
- Two restore jobs never process one row twice: the second waits for the lock, then finds the rows
  restored.

Only sync handlers can be restored (the restore runs in one sync transaction); an async handler's
row fails with a :class:`~kafkaguard.errors.ConfigurationError` in its history.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from kafkaguard import raw_headers
from kafkaguard.consumer import store
from kafkaguard.consumer.apply import Applier, decode_record
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import RawHeaders, Record
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus
from kafkaguard.db.history import history_entry
from kafkaguard.db.safe_text import pg_json, pg_text
from kafkaguard.db.tables import listener_dead_letters as DL
from kafkaguard.errors import (
    ConfigurationError,
    DeadLetterNotFoundError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from kafkaguard.logtext import short
from kafkaguard.policies.classify import qualified_name
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.settings import RestoreSettings

log = logging.getLogger("kafkaguard.restore.listener")


@dataclass(frozen=True)
class RestoreResult:
    """What one restore run did: ids restored in order, and the id that failed (run stopped there)."""

    group: str
    key: str | None
    restored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed_id: int | None = None
    error: str | None = None


def _record_of(row: Any) -> Record:
    """The message a dead letter holds: ``raw_headers`` gives the exact header bytes; rows stored before
    it existed fall back to the readable JSON copy."""
    headers: RawHeaders
    if row.raw_headers is not None:
        headers = raw_headers.decode(bytes(row.raw_headers))
    else:
        headers = [(str(k), str(v).encode()) for k, v in (row.headers or {}).items()]
    return Record(row.topic, row.partition, row.offset, row.raw_key, row.raw_value, headers)


def _apply_row(applier: Applier, s: Session, row: Any) -> Outcome:
    record = _record_of(row)
    event = decode_record(record, applier.settings)
    reg = applier.registry.get(event.type)
    if reg is None:
        raise UnknownEventTypeError(f"no handler for event type {event.type!r} in group {applier.group!r}")
    if reg.is_async:
        raise ConfigurationError(f"handler of {event.type!r} is async; restore runs sync handlers only")
    return applier.apply_in(s, record, event, reg, attempt=row.attempts + 1, park=False)


def _restore_rows(
    applier: Applier, s: Session, rows: list[Any], *, restored_by: str, policy: RetryPolicy
) -> RestoreResult:
    now = datetime.now(UTC)
    result = RestoreResult(applier.group, rows[0].key if rows else None)
    for row in rows:
        savepoint = s.begin_nested()
        try:
            outcome = _apply_row(applier, s, row)
            savepoint.commit()
        except Exception as exc:
            savepoint.rollback()
            if store.is_connection_error(exc):
                raise StoreUnavailableError(f"PostgreSQL is unreachable: {exc.__class__.__name__}") from exc
            attempts = row.attempts + 1
            terminal = attempts >= policy.max_attempts
            s.execute(
                update(DL)
                .where(DL.c.id == row.id)
                .values(
                    attempts=attempts,
                    status=(DeadLetterStatus.FAILED if terminal else DeadLetterStatus.PENDING).value,
                    next_attempt_at=now + timedelta(seconds=policy.backoff.delay(attempts)),
                    error_class=qualified_name(type(exc)),
                    error_message=pg_text(str(exc)[:10_000]),
                    stack=pg_text("".join(traceback.format_exception(exc))[-50_000:]),
                    updated_at=func.now(),
                    history=DL.c.history.op("||")(
                        _json_list(pg_json(history_entry("restore_failed", exc, attempts=attempts)))
                    ),
                )
            )
            log.warning(
                "restore stopped group=%s key=%s id=%s %s[%s]@%s: %s",
                applier.group, short(row.key), row.id, row.topic, row.partition, row.offset, short(repr(exc), 500),
            )  # fmt: skip
            return RestoreResult(result.group, result.key, result.restored, result.duplicates, row.id, repr(exc))
        s.execute(
            update(DL)
            .where(DL.c.id == row.id)
            .values(
                status=DeadLetterStatus.RESTORED.value,
                restored_at=func.now(),
                restored_by=restored_by,
                attempts=row.attempts + 1,
                updated_at=func.now(),
                history=DL.c.history.op("||")(_json_list(history_entry("restored", outcome=outcome.value))),
            )
        )
        (result.duplicates if outcome is Outcome.DUPLICATE else result.restored).append(row.id)
    return result


def _json_list(entry: dict[str, Any]) -> Any:
    return cast(literal([entry], JSONB), JSONB)


def restore_key(
    engine: Engine,
    registry: HandlerRegistry,
    group: str,
    key: str,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> RestoreResult:
    """Re-apply every open dead letter of ``key`` in ``group``, oldest first; stop at the first failure.

    ``restored_by`` (default ``"replay"``) is stored on restored rows; ``policy`` (default: the
    restore jobs' 5 attempts, 1 h apart) sets ``next_attempt_at`` and when a row turns ``failed``.
    Raises :class:`StoreUnavailableError` if PostgreSQL is unreachable (nothing changed then).
    """
    settings = consumer_settings or ConsumerSettings(group_id=group)
    if settings.group_id != group:
        settings = settings.model_copy(update={"group_id": group})
    applier = Applier(engine, registry, settings)
    with Session(engine) as s, s.begin():
        s.execute(store.lock_key(group, key))
        rows = list(
            s.execute(
                select(DL)
                .where(DL.c.consumer_group == group, DL.c.key == key, DL.c.status.in_(OPEN_STATUSES))
                .order_by(DL.c.id)
                .with_for_update()
            )
        )
        return _restore_rows(applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy)


def retry_dead_letter(
    engine: Engine,
    registry: HandlerRegistry,
    dead_letter_id: int,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> RestoreResult:
    """Retry one dead letter by id: a keyed row restores its whole key from the head (order holds);
    a keyless row (undecodable key) is retried alone. ``consumer_settings``: limits and classifier
    (the group is always the row's own)."""
    with Session(engine) as s:
        row = s.execute(select(DL).where(DL.c.id == dead_letter_id)).first()
    if row is None:
        raise DeadLetterNotFoundError(f"listener dead letter {dead_letter_id} does not exist")
    settings = (consumer_settings or ConsumerSettings()).model_copy(update={"group_id": row.consumer_group})
    if row.key is not None:
        return restore_key(
            engine, registry, row.consumer_group, row.key,
            restored_by=restored_by, policy=policy, consumer_settings=settings,
        )  # fmt: skip
    applier = Applier(engine, registry, settings)
    with Session(engine) as s, s.begin():
        rows = list(
            s.execute(select(DL).where(DL.c.id == dead_letter_id, DL.c.status.in_(OPEN_STATUSES)).with_for_update())
        )
        return _restore_rows(applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy)


def due_keys(engine: Engine, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
    """``(group, key)`` pairs whose oldest open dead letter is ``pending`` and due now, oldest head first.

    ``group``: only that consumer group's keys — filtered before the ``LIMIT``, so one group's
    backlog never hides another group's due keys.
    """
    where: list[ColumnElement[bool]] = [DL.c.status.in_(OPEN_STATUSES), DL.c.key.is_not(None)]
    if group is not None:
        where.append(DL.c.consumer_group == group)
    head = (
        select(DL.c.consumer_group, DL.c.key, func.min(DL.c.id).label("head_id"))
        .where(*where)
        .group_by(DL.c.consumer_group, DL.c.key)
        .subquery()
    )
    q = (
        select(head.c.consumer_group, head.c.key)
        .join(DL, DL.c.id == head.c.head_id)
        .where(DL.c.status == DeadLetterStatus.PENDING.value, DL.c.next_attempt_at <= func.now())
        .order_by(head.c.head_id)
        .limit(limit)
    )
    with Session(engine) as s:
        return [(str(g), str(k)) for g, k in s.execute(q)]
