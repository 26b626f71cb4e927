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
- Total: whatever bytes a message holds, :meth:`Applier.process` ends in one durable outcome or an
  outage (:class:`StoreUnavailableError`). A dead-letter row the database refuses for what it
  contains (not for an outage) is replaced by a ``kafkaguard_last_resort`` row: bytes and ASCII only.
- Identity: an event id the inbox holds with different content is an id conflict
  (:mod:`kafkaguard.consumer.identity`), never a silent duplicate.

Not thread-safe: one :class:`Applier` per worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry.trace import get_current_span, use_span
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.consumer.dead_letters import dead_letter_row, key_text, last_resort_row
from kafkaguard.consumer.decisions import (
    ID_CONFLICT,
    PARKED,
    UNKNOWN_TYPE,
    Outcome,
    after_failure,
    failure_reason,
)
from kafkaguard.consumer.identity import content_hash
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry, Position, Registration
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.envelope import DecodeError, DecodeReason, Event, decode
from kafkaguard.errors import IdConflictError, StoreUnavailableError, UnknownEventTypeError
from kafkaguard.log_json import bind, unbind
from kafkaguard.logtext import short
from kafkaguard.policies.retry import GiveUp
from kafkaguard.stores.by_database import consumer_store_for
from kafkaguard.stores.inbox import AsyncConsumerTx, ConsumerStore, ConsumerTx, Prior
from kafkaguard.tracing import spans

log = logging.getLogger("kafkaguard.consumer")

_FAILED = frozenset({Outcome.DEAD_LETTERED, Outcome.ID_CONFLICT})  # outcomes whose span has an error status


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
        "content_hash": content_hash(event),
    }


def decode_record(record: Record, settings: ConsumerSettings) -> Event:
    """``record`` as an event under ``settings``' limits; raise :class:`DecodeError` otherwise."""
    if record.read_error is not None:
        raise DecodeError(DecodeReason.UNREADABLE, record.read_error)
    return decode(
        record.key,
        record.value,
        record.headers,
        max_payload_bytes=settings.max_payload_bytes,
        max_payload_depth=settings.max_payload_depth,
    )


def check_identity(tx: ConsumerTx, group: str, event: Event, record: Record | None) -> Outcome | None:
    """Inside the key's transaction: ``DUPLICATE`` if the inbox holds ``event`` already, ``None`` if
    it is new; raise :class:`IdConflictError` if the inbox holds its id with other content."""
    return judge(tx.prior(group, event.event_id), group, event, record)


def judge(
    prior: Prior | None, group: str, event: Event, record: Record | None, *, digest: bytes | None = None
) -> Outcome | None:
    """:func:`check_identity`'s decision on the inbox row ``prior`` (pure); ``digest``: the event's
    :func:`content_hash` when the caller has it already."""
    if prior is None:
        return None
    if prior.content_hash is None or prior.content_hash == (digest or content_hash(event)):
        return Outcome.DUPLICATE  # rows written before content hashes existed count as the same event
    first = f"{prior.topic}[{prior.partition}]@{prior.offset}" if prior.topic is not None else "http"
    now = record.where() if record is not None else "http"
    raise IdConflictError(
        f"event id {event.event_id} in group {group!r} was applied from {first} with other content; "
        f"the message at {now} (type {short(event.type)}, key {short(event.key)}) is not the same event"
    )


def connection_dropped(exc: BaseException) -> bool:
    """Whether ``exc`` (or its cause) reports that its database connection was lost and discarded
    (SQLAlchemy's ``connection_invalidated``), rather than a statement failing."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "connection_invalidated", False) is True:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def position(record: Record | None) -> Position | None:
    """Where ``record`` was read (``None`` without a record: HTTP)."""
    return Position(record.topic, record.partition, record.offset) if record is not None else None


def call_handler(reg: Registration, session: Any, group: str, record: Record | None, event: Event, attempt: int) -> Any:
    """Run ``reg``'s handler for one event in ``session``: a batch handler gets ``[event]``.

    Returns what the handler returns (an awaitable for ``async def`` handlers).
    """
    if reg.batch:
        return reg.func([event], BatchContext(session, group, [position(record)], attempt))
    ctx = HandlerContext(session=session, consumer_group=group, attempt=attempt, event=event)
    if record is not None:
        ctx.topic, ctx.partition, ctx.offset = record.topic, record.partition, record.offset
    return reg.func(event, ctx)


class Applier:
    """Carries one message to a durable outcome (see the module docstring for the guarantees).

    ``store``: where the inbox and the dead letters live (a :class:`ConsumerStore`; an
    :class:`~sqlalchemy.Engine` is wrapped in its database's store,
    :func:`~kafkaguard.stores.by_database.consumer_store_for`, with ``async_engine``, which
    ``async def`` handlers need). ``stop`` cuts a retry wait short at shutdown;
    ``on_dead_letter(record, row)`` runs after a new dead letter committed (the DLQ topic copy).
    """

    def __init__(
        self,
        store: ConsumerStore | Engine,
        registry: HandlerRegistry,
        settings: ConsumerSettings,
        *,
        async_engine: AsyncEngine | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        on_dead_letter: Callable[[Record, dict[str, Any]], None] | None = None,
    ) -> None:
        self.store: ConsumerStore = consumer_store_for(store, async_engine) if isinstance(store, Engine) else store
        self.registry = registry
        self.settings = settings
        self.group = settings.group_id
        self.stop = stop or threading.Event()
        self.rng = rng or random.Random()  # noqa: S311 - jitter only
        self.on_dead_letter = on_dead_letter
        # ``on_retry(event_type)`` runs before each in-process retry of a failed handler (metrics).
        self.on_retry: Callable[[str], None] | None = None
        self._runner: asyncio.Runner | None = None

    # -- entry points ---------------------------------------------------------------------------
    def process(self, record: Record) -> Outcome:
        """Bring ``record`` to a durable outcome; raise StoreUnavailableError or Interrupted.

        Log lines meanwhile concern ``record`` (:func:`kafkaguard.log_json.about`); with tracing on,
        the work runs in a ``process <topic>`` span, a child of the message's creation context,
        whose ``kafkaguard.outcome`` is the outcome.
        """
        token = bind(record)
        try:
            if not spans.active():
                return self._process(record)
            return self._process_traced(record)
        finally:
            unbind(token)

    def _process_traced(self, record: Record) -> Outcome:
        span = spans.process_span(
            topic=record.topic, partition=record.partition, offset=record.offset,
            key=key_text(record, None), group=self.group, headers=record.headers,
        )  # fmt: skip
        try:
            with use_span(span, end_on_exit=False):
                outcome = self._process(record)
        except BaseException as exc:
            spans.finish(span, "store_unavailable" if isinstance(exc, StoreUnavailableError) else "interrupted",
                         error=exc)  # fmt: skip
            raise
        spans.finish(span, outcome.value, failed=outcome in _FAILED)
        return outcome

    def _process(self, record: Record) -> Outcome:
        try:
            event = decode_record(record, self.settings)
        except DecodeError as exc:
            return self.dead_letter(record, None, reason=exc.reason.value, exc=exc, attempts=1)
        if spans.active():  # known only now: the process span's message id
            get_current_span().set_attribute(spans.names().message_id, str(event.event_id))
        reg = self.registry.get(event.type)
        if reg is None:
            if self.registry.ignore_unknown:
                return Outcome.IGNORED
            exc2 = UnknownEventTypeError(f"no handler for event type {short(event.type)} in group {self.group!r}")
            return self.dead_letter(record, event, reason=UNKNOWN_TYPE, exc=exc2, attempts=1)
        return self.apply_with_retries(record, event, reg)

    def apply_with_retries(self, record: Record, event: Event, reg: Registration) -> Outcome:
        """Run the inbox transaction, retrying retriable handler errors, then dead-letter."""
        attempt = 1
        reconnected = False
        while True:
            try:
                return self.apply_once(record, event, reg, attempt)
            except StoreUnavailableError:
                raise
            except IdConflictError as exc:
                return self.id_conflict(record, event, exc)
            except Exception as exc:
                if not reconnected and connection_dropped(exc):
                    # The transaction died with its connection and the store answers again (else
                    # apply_once raised StoreUnavailableError): not the handler's failure, so once
                    # at once on a new connection, without counting an attempt. A COMMIT whose
                    # answer was lost is found by the inbox on the retry (a duplicate).
                    reconnected = True
                    log.warning("connection lost group=%s %s; retrying on a new one", self.group, record.where())
                    continue
                step = after_failure(attempt, exc, self.settings, self.rng, reg.retry)
                log.warning(
                    "handler failed (attempt %d) group=%s %s event_id=%s key=%s: %s",
                    attempt, self.group, record.where(), event.event_id, short(event.key), short(repr(exc), 500),
                )  # fmt: skip
                if isinstance(step, GiveUp):
                    return self.dead_letter(record, event, reason=failure_reason(exc), exc=exc, attempts=attempt)
                if self.on_retry is not None:
                    self.on_retry(event.type)
                if self.stop.wait(step.delay):
                    raise Interrupted from exc
                attempt += 1

    def apply_once(self, record: Record | None, event: Event, reg: Registration, attempt: int) -> Outcome:
        """One attempt in one transaction; handler errors propagate, outages become StoreUnavailableError."""
        try:
            if reg.is_async:
                return self._run_async(self.apply_once_async(record, event, reg, attempt))
            with self.store.transaction() as tx:
                return self.apply_in(tx, record, event, reg, attempt)
        except Exception as exc:
            self.raise_if_store_down(exc)
            raise

    async def apply_once_async(self, record: Record | None, event: Event, reg: Registration, attempt: int) -> Outcome:
        """:meth:`apply_once` for an ``async def`` handler, awaited in the caller's event loop (HTTP);
        handler errors propagate unclassified."""
        async with self.store.async_transaction() as atx:
            return await self.apply_in_async(atx, record, event, reg, attempt)

    def prepare(
        self, tx: ConsumerTx, record: Record | None, event: Event, reg: Registration, *, park: bool = True
    ) -> Outcome | None:
        """The steps before the handler, in the caller's transaction ``tx``: lock the key, dedupe,
        park behind an open dead letter, write the inbox row. ``None``: run the handler now.

        ``park=False`` skips the blocked check (the restore job, which applies the key's open dead
        letters themselves, in order). Without a ``record`` (HTTP) a blocked key is not stored but
        answered with ``Outcome.BLOCKED``.
        """
        row = inbox_row(self.group, event, record) if reg.inbox else None
        start = tx.begin_event(self.group, event.key, row, check_blocked=park)  # one round trip on PostgreSQL
        if start.prior is not None and judge(
            start.prior, self.group, event, record, digest=row["content_hash"] if row else None
        ):
            return Outcome.DUPLICATE
        if start.blocked:
            if record is None:
                return Outcome.BLOCKED
            parked = dead_letter_row(
                self.group, record, reason=PARKED, event=event, exc=None, attempts=0, status=DeadLetterStatus.PARKED
            )
            tx.insert_dead_letter(parked)
            return Outcome.PARKED
        return None

    def apply_in(
        self, tx: ConsumerTx, record: Record | None, event: Event, reg: Registration, attempt: int, *, park: bool = True
    ) -> Outcome:
        """The inbox path inside the caller's transaction ``tx`` (:meth:`prepare`, then a sync handler)."""
        outcome = self.prepare(tx, record, event, reg, park=park)
        if outcome is not None:
            return outcome
        call_handler(reg, tx.session, self.group, record, event, attempt)
        return Outcome.APPLIED

    async def apply_in_async(
        self,
        atx: AsyncConsumerTx,
        record: Record | None,
        event: Event,
        reg: Registration,
        attempt: int,
        *,
        park: bool = True,
    ) -> Outcome:
        """:meth:`apply_in` in an async transaction: the same sync steps (:meth:`prepare`) through
        ``run_sync``; an ``async def`` handler is awaited with the async session, a sync one runs on
        the sync form (so a key mixing both keeps its order in one transaction)."""
        if not reg.is_async:
            return await atx.run_sync(lambda tx: self.apply_in(tx, record, event, reg, attempt, park=park))
        outcome = await atx.run_sync(lambda tx: self.prepare(tx, record, event, reg, park=park))
        if outcome is not None:
            return outcome
        await call_handler(reg, atx.session, self.group, record, event, attempt)
        return Outcome.APPLIED

    def dead_letter(
        self, record: Record, event: Event | None, *, reason: str, exc: BaseException, attempts: int
    ) -> Outcome:
        """Store ``record`` as a ``pending`` dead letter (idempotent per position) under its key's lock."""
        row = dead_letter_row(self.group, record, reason=reason, event=event, exc=exc, attempts=attempts)
        key = key_text(record, event)
        try:
            with self.store.transaction() as tx:
                if key is not None:
                    tx.lock_key(self.group, key)
                new_id = tx.insert_dead_letter(row)
        except Exception as db_exc:  # noqa: BLE001 - refused for its data (outages re-raised above)
            self.raise_if_store_down(db_exc)
            return self.last_resort(record, reason=reason, failure=exc, why_refused=db_exc)
        log.error(
            "dead-lettered group=%s %s event_id=%s key=%s reason=%s error=%s: %s",
            self.group, record.where(), event.event_id if event else "-", short(key), reason, row["error_class"],
            short(row["error_message"], 300),
        )  # fmt: skip
        if new_id is not None and self.on_dead_letter is not None:  # not again for a redelivery
            self.on_dead_letter(record, row)
        return Outcome.DEAD_LETTERED

    def last_resort(
        self, record: Record, *, reason: str, failure: BaseException, why_refused: BaseException
    ) -> Outcome:
        """Store ``record`` in ``kafkaguard_last_resort`` (bytes and ASCII only) when its dead-letter row
        was refused for what it contains; an outage still raises :class:`StoreUnavailableError`."""
        row = last_resort_row(self.group, record, reason=reason, failure=failure, why_refused=why_refused)
        try:
            with self.store.transaction() as tx:
                tx.insert_last_resort(row)
        except Exception as db_exc:
            self.raise_if_store_down(db_exc)
            # Nothing is left that the data could be refused for: treat it as the store failing.
            raise StoreUnavailableError(
                f"even the last-resort row was refused ({type(db_exc).__name__}); pausing"
            ) from db_exc
        log.critical(
            "dead letter refused by the database, stored in kafkaguard_last_resort group=%s %s reason=%s: %s",
            self.group, record.where(), reason, row["error"][:500],
        )  # fmt: skip
        return Outcome.DEAD_LETTERED

    def id_conflict(self, record: Record, event: Event, exc: IdConflictError) -> Outcome:
        """Count, log and (``dead_letter_id_conflicts``) dead-letter an id conflict; never apply it."""
        log.error("id conflict group=%s: %s", self.group, exc)
        if self.settings.dead_letter_id_conflicts:
            self.dead_letter(record, event, reason=ID_CONFLICT, exc=exc, attempts=1)
        return Outcome.ID_CONFLICT

    # -- helpers ----------------------------------------------------------------------------------
    def store_alive(self) -> bool:
        """Whether the store answers now."""
        return self.store.store_alive()

    def raise_if_store_down(self, exc: BaseException) -> None:
        """Turn a connection failure into StoreUnavailableError when the store does not answer."""
        if isinstance(exc, StoreUnavailableError):
            raise exc
        if self.store.is_connection_error(exc) and not self.store.store_alive():
            raise StoreUnavailableError(f"the consumer store is unreachable: {exc.__class__.__name__}") from exc

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
