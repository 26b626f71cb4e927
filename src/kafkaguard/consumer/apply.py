"""Apply one message: decode, lock its key, dedupe, park or run the handler, or dead-letter it.

Guarantees:
- Exactly-once effect: the handler's writes and the inbox row ``(group, event_id)`` commit in one
  transaction; an event whose inbox row exists is skipped (``Outcome.DUPLICATE``).
- Per-key order: under the key's advisory lock (scope = group) the same transaction checks for an
  open listener dead letter of the key; if there is one the message is stored ``parked`` behind it.
- Every return value is durable; a PostgreSQL outage raises :class:`StoreUnavailableError` and
  nothing is dead-lettered for it (the worker pauses and redelivers).
- Retriable handler errors are retried in-process with the policy's backoff (never a hot loop);
  then, or at once for permanent errors, the message becomes a ``pending`` dead letter.

Not thread-safe: one :class:`Applier` per worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.consumer import store
from kafkaguard.consumer.dead_letters import dead_letter_row, key_text
from kafkaguard.consumer.decisions import HANDLER_ERROR, PARKED, UNKNOWN_TYPE, Outcome, after_failure
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry, Position, Registration
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.envelope import DecodeError, Event, decode
from kafkaguard.errors import StoreUnavailableError, UnknownEventTypeError
from kafkaguard.policies.retry import GiveUp

log = logging.getLogger("kafkaguard.consumer")


class Interrupted(Exception):
    """Shutdown was requested during a retry wait; the message stays uncommitted and is redelivered."""


def inbox_row(group: str, event: Event, record: Record | None) -> dict[str, Any]:
    """The ``kafka_inbox`` row of ``event`` in ``group``."""
    return {
        "consumer_group": group,
        "event_id": event.event_id,
        "type": event.type,
        "key": event.key,
        "topic": record.topic if record else None,
        "partition": record.partition if record else None,
        "offset": record.offset if record else None,
    }


def position(record: Record | None) -> Position | None:
    """Where ``record`` was read (``None`` without a record: HTTP)."""
    return Position(record.topic, record.partition, record.offset) if record is not None else None


def call_handler(reg: Registration, session: Any, group: str, record: Record | None, event: Event, attempt: int) -> Any:
    """Run ``reg``'s handler for one event in ``session``: a batch handler gets ``[event]``.

    Returns what the handler returns (an awaitable for ``async def`` handlers).
    """
    if reg.batch:
        return reg.func([event], BatchContext(session, group, [position(record)], attempt))
    ctx = HandlerContext(session=session, consumer_group=group, attempt=attempt)
    if record is not None:
        ctx.topic, ctx.partition, ctx.offset = record.topic, record.partition, record.offset
    return reg.func(event, ctx)


class Applier:
    """Carries one message to a durable outcome (see the module docstring for the guarantees).

    ``async_engine`` is needed only when the registry holds ``async def`` handlers; ``stop`` cuts a
    retry wait short at shutdown; ``on_dead_letter(record, row)`` runs after a new dead letter
    committed (the DLQ topic copy).
    """

    def __init__(
        self,
        engine: Engine,
        registry: HandlerRegistry,
        settings: ConsumerSettings,
        *,
        async_engine: AsyncEngine | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        on_dead_letter: Callable[[Record, dict[str, Any]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.async_engine = async_engine
        self.registry = registry
        self.settings = settings
        self.group = settings.group_id
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()  # noqa: S311 - jitter only
        self.on_dead_letter = on_dead_letter
        self._runner: asyncio.Runner | None = None

    # -- entry points ---------------------------------------------------------------------------
    def process(self, record: Record) -> Outcome:
        """Bring ``record`` to a durable outcome; raise StoreUnavailableError or Interrupted."""
        try:
            event = decode(record.key, record.value, record.headers, max_payload_bytes=self.settings.max_payload_bytes)
        except DecodeError as exc:
            return self.dead_letter(record, None, reason=exc.reason.value, exc=exc, attempts=1)
        reg = self.registry.get(event.type)
        if reg is None:
            if self.registry.ignore_unknown:
                return Outcome.IGNORED
            exc2 = UnknownEventTypeError(f"no handler for event type {event.type!r} in group {self.group!r}")
            return self.dead_letter(record, event, reason=UNKNOWN_TYPE, exc=exc2, attempts=1)
        return self.apply_with_retries(record, event, reg)

    def apply_with_retries(self, record: Record, event: Event, reg: Registration) -> Outcome:
        """Run the inbox transaction, retrying retriable handler errors, then dead-letter."""
        attempt = 1
        while True:
            try:
                return self.apply_once(record, event, reg, attempt)
            except StoreUnavailableError:
                raise
            except Exception as exc:
                step = after_failure(attempt, exc, self.settings, self.rng)
                log.warning(
                    "handler failed (attempt %d) group=%s %s event_id=%s key=%s: %r",
                    attempt, self.group, record.where(), event.event_id, event.key, exc,
                )  # fmt: skip
                if isinstance(step, GiveUp):
                    return self.dead_letter(record, event, reason=HANDLER_ERROR, exc=exc, attempts=attempt)
                if self.stop.wait(step.delay):
                    raise Interrupted from exc
                attempt += 1

    def apply_once(self, record: Record | None, event: Event, reg: Registration, attempt: int) -> Outcome:
        """One attempt in one transaction; handler errors propagate, outages become StoreUnavailableError."""
        try:
            if reg.is_async:
                return self._run_async(self._apply_async(record, event, reg, attempt))
            with Session(self.engine) as session, session.begin():
                return self.apply_in(session, record, event, reg, attempt)
        except Exception as exc:
            self.raise_if_store_down(exc)
            raise

    def apply_in(
        self, s: Session, record: Record | None, event: Event, reg: Registration, attempt: int, *, park: bool = True
    ) -> Outcome:
        """The inbox path inside the caller's transaction ``s``.

        ``park=False`` skips the blocked check (the restore job, which applies the key's open dead
        letters themselves, in order). Without a ``record`` (HTTP) a blocked key is not stored but
        answered with ``Outcome.BLOCKED``.
        """
        s.execute(store.lock_key(self.group, event.key))
        if reg.inbox and s.execute(store.is_duplicate(self.group, event.event_id)).scalar():
            return Outcome.DUPLICATE
        if park and s.execute(store.is_blocked(self.group, event.key)).scalar():
            if record is None:
                return Outcome.BLOCKED
            row = dead_letter_row(
                self.group, record, reason=PARKED, event=event, exc=None, attempts=0, status=DeadLetterStatus.PARKED
            )
            s.execute(store.insert_dead_letter(row))
            return Outcome.PARKED
        if reg.inbox:
            s.execute(store.insert_inbox([inbox_row(self.group, event, record)]))
        call_handler(reg, s, self.group, record, event, attempt)
        return Outcome.APPLIED

    async def _apply_async(self, record: Record | None, event: Event, reg: Registration, attempt: int) -> Outcome:
        if self.async_engine is None:
            raise StoreUnavailableError("an async handler needs an async engine (Worker(async_engine=...))")
        async with AsyncSession(self.async_engine) as s, s.begin():
            await s.execute(store.lock_key(self.group, event.key))
            if reg.inbox and (await s.execute(store.is_duplicate(self.group, event.event_id))).scalar():
                return Outcome.DUPLICATE
            if (await s.execute(store.is_blocked(self.group, event.key))).scalar():
                if record is None:
                    return Outcome.BLOCKED
                row = dead_letter_row(
                    self.group, record, reason=PARKED, event=event, exc=None, attempts=0, status=DeadLetterStatus.PARKED
                )
                await s.execute(store.insert_dead_letter(row))
                return Outcome.PARKED
            if reg.inbox:
                await s.execute(store.insert_inbox([inbox_row(self.group, event, record)]))
            await call_handler(reg, s, self.group, record, event, attempt)
            return Outcome.APPLIED

    def dead_letter(
        self, record: Record, event: Event | None, *, reason: str, exc: BaseException, attempts: int
    ) -> Outcome:
        """Store ``record`` as a ``pending`` dead letter (idempotent per position) under its key's lock."""
        row = dead_letter_row(self.group, record, reason=reason, event=event, exc=exc, attempts=attempts)
        key = key_text(record, event)
        try:
            with Session(self.engine) as s, s.begin():
                if key is not None:
                    s.execute(store.lock_key(self.group, key))
                new_id = s.execute(store.insert_dead_letter(row)).scalar()
        except Exception as db_exc:
            self.raise_if_store_down(db_exc)
            raise
        log.error(
            "dead-lettered group=%s %s key=%s reason=%s error=%s",
            self.group, record.where(), key, reason, row["error_class"],
        )  # fmt: skip
        if new_id is not None and self.on_dead_letter is not None:  # not again for a redelivery
            self.on_dead_letter(record, row)
        return Outcome.DEAD_LETTERED

    # -- helpers ----------------------------------------------------------------------------------
    def store_alive(self) -> bool:
        """Whether PostgreSQL answers ``SELECT 1`` now."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            return False
        return True

    def raise_if_store_down(self, exc: BaseException) -> None:
        """Turn a connection failure into StoreUnavailableError when PostgreSQL does not answer."""
        if store.is_connection_error(exc) and not self.store_alive():
            raise StoreUnavailableError(f"PostgreSQL is unreachable: {exc.__class__.__name__}") from exc

    def _run_async(self, coro: Any) -> Outcome:
        if self._runner is None:
            self._runner = asyncio.Runner()
        result: Outcome = self._runner.run(coro)
        return result

    def close(self) -> None:
        """Release the asyncio runner (async handlers)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
