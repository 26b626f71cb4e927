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

Async handlers are restored like sync ones. When the registry holds an ``async def`` handler the
key's transaction is an :class:`~sqlalchemy.ext.asyncio.AsyncSession` (on ``async_engine``, or an
async engine on the same database and schema as ``engine``): async handlers get that session,
sync handlers its sync form (``AsyncSession.run_sync``), so a key mixing both keeps its order in
one transaction. :func:`restore_key_async` / :func:`retry_dead_letter_async` are the forms for
code that runs in an event loop.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Update, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard import raw_headers
from kafkaguard.consumer import store
from kafkaguard.consumer.apply import Applier, call_handler, check_identity_async, decode_record, inbox_row
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import RawHeaders, Record
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.restore_loop import run_async
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
    if reg.is_async:  # only reachable through a registry that gained an async handler meanwhile
        raise ConfigurationError(f"handler of {event.type!r} is async: restore it with an async engine")
    return applier.apply_in(s, record, event, reg, attempt=row.attempts + 1, park=False)


async def _apply_row_async(applier: Applier, s: AsyncSession, row: Any) -> Outcome:
    """:func:`_apply_row` in an async transaction: the consumer's inbox path (lock, identity, inbox
    row, handler) for an async handler; a sync handler runs on the session's sync form."""
    record = _record_of(row)
    event = decode_record(record, applier.settings)
    reg = applier.registry.get(event.type)
    if reg is None:
        raise UnknownEventTypeError(f"no handler for event type {event.type!r} in group {applier.group!r}")
    attempt = row.attempts + 1
    if not reg.is_async:
        return await s.run_sync(lambda sync: applier.apply_in(sync, record, event, reg, attempt, park=False))
    await s.execute(store.lock_key(applier.group, event.key))
    if reg.inbox and await check_identity_async(s, applier.group, event, record) is Outcome.DUPLICATE:
        return Outcome.DUPLICATE
    if reg.inbox:
        await s.execute(store.insert_inbox([inbox_row(applier.group, event, record)]))
    await call_handler(reg, s, applier.group, record, event, attempt)
    return Outcome.APPLIED


def _failed(row: Any, exc: BaseException, policy: RetryPolicy, now: datetime) -> Update:
    """The update of a row whose restore failed: attempts, error, history, next try (or ``failed``)."""
    attempts = row.attempts + 1
    terminal = attempts >= policy.max_attempts
    return (
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
            history=DL.c.history.op("||")(_json_list(pg_json(history_entry("restore_failed", exc, attempts=attempts)))),
        )
    )


def _restored(row: Any, outcome: Outcome, restored_by: str) -> Update:
    """The update of a restored row."""
    return (
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


def _stopped(applier: Applier, result: RestoreResult, row: Any, exc: BaseException) -> RestoreResult:
    log.warning(
        "restore stopped group=%s key=%s id=%s %s[%s]@%s: %s",
        applier.group, short(row.key), row.id, row.topic, row.partition, row.offset, short(repr(exc), 500),
    )  # fmt: skip
    return RestoreResult(result.group, result.key, result.restored, result.duplicates, row.id, repr(exc))


def _outage(exc: BaseException) -> None:
    if store.is_connection_error(exc):
        raise StoreUnavailableError(f"PostgreSQL is unreachable: {exc.__class__.__name__}") from exc


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
        except Exception as exc:  # noqa: BLE001 - the row's failure is stored; outages re-raised
            savepoint.rollback()
            _outage(exc)
            s.execute(_failed(row, exc, policy, now))
            return _stopped(applier, result, row, exc)
        s.execute(_restored(row, outcome, restored_by))
        (result.duplicates if outcome is Outcome.DUPLICATE else result.restored).append(row.id)
    return result


async def _restore_rows_async(
    applier: Applier, s: AsyncSession, rows: list[Any], *, restored_by: str, policy: RetryPolicy
) -> RestoreResult:
    """:func:`_restore_rows` in an async transaction (same order, savepoints and outcomes)."""
    now = datetime.now(UTC)
    result = RestoreResult(applier.group, rows[0].key if rows else None)
    for row in rows:
        savepoint = await s.begin_nested()
        try:
            outcome = await _apply_row_async(applier, s, row)
            await savepoint.commit()
        except Exception as exc:  # noqa: BLE001 - the row's failure is stored; outages re-raised
            await savepoint.rollback()
            _outage(exc)
            await s.execute(_failed(row, exc, policy, now))
            return _stopped(applier, result, row, exc)
        await s.execute(_restored(row, outcome, restored_by))
        (result.duplicates if outcome is Outcome.DUPLICATE else result.restored).append(row.id)
    return result


def _json_list(entry: dict[str, Any]) -> Any:
    return cast(literal([entry], JSONB), JSONB)


def _consumer_settings(group: str, consumer_settings: ConsumerSettings | None) -> ConsumerSettings:
    settings = consumer_settings or ConsumerSettings(group_id=group)
    return settings if settings.group_id == group else settings.model_copy(update={"group_id": group})


_KEY_ROWS = (DL.c.status.in_(OPEN_STATUSES),)


def _key_rows(group: str, key: str) -> Any:
    return (
        select(DL).where(DL.c.consumer_group == group, DL.c.key == key, *_KEY_ROWS).order_by(DL.c.id).with_for_update()
    )


def _id_rows(dead_letter_id: int) -> Any:
    return select(DL).where(DL.c.id == dead_letter_id, *_KEY_ROWS).with_for_update()


def restore_key(
    engine: Engine,
    registry: HandlerRegistry,
    group: str,
    key: str,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
    async_engine: AsyncEngine | None = None,
) -> RestoreResult:
    """Re-apply every open dead letter of ``key`` in ``group``, oldest first; stop at the first failure.

    ``restored_by`` (default ``"replay"``) is stored on restored rows; ``policy`` (default: the
    restore jobs' 5 attempts, 1 h apart) sets ``next_attempt_at`` and when a row turns ``failed``.
    With ``async def`` handlers in ``registry`` the key is restored in an async transaction on
    ``async_engine`` (default: one on ``engine``'s database and schema for this call; an engine
    passed here is used from an event loop kafkaguard keeps in this thread, so give one that
    nothing else uses, e.g. from :func:`~kafkaguard.consumer.restore_loop.async_engine_for`);
    inside a running event loop use :func:`restore_key_async`.
    Raises :class:`StoreUnavailableError` if PostgreSQL is unreachable (nothing changed then).
    """
    if registry.has_async:
        return run_async(
            engine, async_engine,
            lambda ae: restore_key_async(
                ae, registry, group, key, restored_by=restored_by, policy=policy, consumer_settings=consumer_settings
            ),
        )  # fmt: skip
    applier = Applier(engine, registry, _consumer_settings(group, consumer_settings))
    with Session(engine) as s, s.begin():
        s.execute(store.lock_key(group, key))
        rows = list(s.execute(_key_rows(group, key)))
        return _restore_rows(applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy)


async def restore_key_async(
    async_engine: AsyncEngine,
    registry: HandlerRegistry,
    group: str,
    key: str,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> RestoreResult:
    """:func:`restore_key` for an event loop: the same guarantees, in one async transaction on
    ``async_engine`` (async handlers get the :class:`AsyncSession`, sync ones its sync form)."""
    applier = Applier(async_engine.sync_engine, registry, _consumer_settings(group, consumer_settings))
    async with AsyncSession(async_engine) as s, s.begin():
        await s.execute(store.lock_key(group, key))
        rows = list(await s.execute(_key_rows(group, key)))
        return await _restore_rows_async(
            applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy
        )


def retry_dead_letter(
    engine: Engine,
    registry: HandlerRegistry,
    dead_letter_id: int,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
    async_engine: AsyncEngine | None = None,
) -> RestoreResult:
    """Retry one dead letter by id: a keyed row restores its whole key from the head (order holds);
    a keyless row (undecodable key) is retried alone. ``consumer_settings``: limits and classifier
    (the group is always the row's own). ``async_engine``: as for :func:`restore_key`."""
    if registry.has_async:
        return run_async(
            engine, async_engine,
            lambda ae: retry_dead_letter_async(
                ae, registry, dead_letter_id, restored_by=restored_by, policy=policy,
                consumer_settings=consumer_settings,
            ),
        )  # fmt: skip
    with Session(engine) as s:
        row = s.execute(select(DL).where(DL.c.id == dead_letter_id)).first()
    if row is None:
        raise DeadLetterNotFoundError(f"listener dead letter {dead_letter_id} does not exist")
    settings = _consumer_settings(row.consumer_group, consumer_settings)
    if row.key is not None:
        return restore_key(
            engine, registry, row.consumer_group, row.key,
            restored_by=restored_by, policy=policy, consumer_settings=settings,
        )  # fmt: skip
    applier = Applier(engine, registry, settings)
    with Session(engine) as s, s.begin():
        rows = list(s.execute(_id_rows(dead_letter_id)))
        return _restore_rows(applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy)


async def retry_dead_letter_async(
    async_engine: AsyncEngine,
    registry: HandlerRegistry,
    dead_letter_id: int,
    *,
    restored_by: str = "replay",
    policy: RetryPolicy | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> RestoreResult:
    """:func:`retry_dead_letter` for an event loop (see :func:`restore_key_async`)."""
    async with AsyncSession(async_engine) as s:
        row = (await s.execute(select(DL).where(DL.c.id == dead_letter_id))).first()
    if row is None:
        raise DeadLetterNotFoundError(f"listener dead letter {dead_letter_id} does not exist")
    settings = _consumer_settings(row.consumer_group, consumer_settings)
    if row.key is not None:
        return await restore_key_async(
            async_engine, registry, row.consumer_group, row.key,
            restored_by=restored_by, policy=policy, consumer_settings=settings,
        )  # fmt: skip
    applier = Applier(async_engine.sync_engine, registry, settings)
    async with AsyncSession(async_engine) as s, s.begin():
        rows = list(await s.execute(_id_rows(dead_letter_id)))
        return await _restore_rows_async(
            applier, s, rows, restored_by=restored_by, policy=policy or RestoreSettings().policy
        )


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
