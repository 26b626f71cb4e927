"""The listener restore job: due listener dead letters re-run through the handlers and the inbox.

Guarantees:
- Serialised with the consumer: a key is restored in one transaction holding the key's lock (scope
  = consumer group), the lock the consumer takes before deciding "is K blocked?". A message of K
  that arrives meanwhile waits for the lock, then sees K free (applied after the restored ones) or
  still blocked (parked behind them).
- Order: the key's open records (``pending``, ``failed``, ``parked``) are applied in arrival order,
  each in a savepoint, through the consumer's inbox path (a duplicate is skipped but still marked
  restored). The first failure stops the key: that record's new state comes from
  :func:`kafkaguard.restore.outcome.after_failure` (backoff, ``failed`` once attempts are
  exhausted); the records after it stay as they were.
- Two jobs never process one record twice: the second waits for the lock, then finds the records
  restored.
- Fair between groups: due keys are filtered by group before the run's limit.
- A key whose open records include an event type the registry has no handler for is left as it
  is and reported (``unhandled_keys``), instead of being marked failed for a wrong registry.
- An outage raises :class:`~kafkaguard.errors.StoreUnavailableError` from a key (nothing changed
  for it); :meth:`ListenerRestoreJob.run_once` stops there and the next run resumes.

Async handlers are restored like sync ones: the key's transaction is then the store's async
transaction; async handlers await with its session, sync ones run on its sync form, so a key
mixing both keeps its order in one transaction. ``*_async`` methods are for code in an event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry.trace import Span, use_span

from kafkaguard import raw_headers
from kafkaguard.consumer.apply import Applier, decode_record
from kafkaguard.consumer.dead_letters import key_text
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import RawHeaders, Record
from kafkaguard.consumer.registry import HandlerRegistry, Registration
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError, DeadLetterNotFoundError, StoreUnavailableError, UnknownEventTypeError
from kafkaguard.log_json import about
from kafkaguard.logtext import short
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.outcome import after_failure, after_success
from kafkaguard.restore.report import RunReport
from kafkaguard.restore.settings import RestoreSettings
from kafkaguard.stores.inbox import AsyncConsumerTx, ConsumerStore, ConsumerTx, SyncTxAsAsync
from kafkaguard.stores.listener_dead_letters import ListenerDeadLetter
from kafkaguard.stores.restore_decision import RestoreDecision
from kafkaguard.tracing import spans

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from kafkaguard.settings import KafkaguardSettings

_T = TypeVar("_T")
log = logging.getLogger("kafkaguard.restore.listener")

HOW = "handler"
"""How a listener record is restored (``by`` in its history)."""


@dataclass(frozen=True)
class RestoreResult:
    """What one restore of a key (or record) did: ids restored in order, and the id that failed (the
    run stopped there; ``gave_up``: it turned ``failed``)."""

    group: str
    key: str | None
    restored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed_id: int | None = None
    error: str | None = None
    gave_up: bool = False


def handler_problems(registry: HandlerRegistry, types: Iterable[str | None]) -> dict[str, str]:
    """Event types a restore cannot apply with ``registry``, each with why (no handler).

    ``None`` (an undecodable record: no type known) is not checked: its restore fails and is
    reported like any failed record.
    """
    return {t: "no handler" for t in sorted({t for t in types if t is not None}) if registry.get(t) is None}


def message_of(row: ListenerDeadLetter) -> Record:
    """The message a dead letter holds: ``raw_headers`` gives the exact header bytes; records stored
    before it existed fall back to the readable JSON copy."""
    headers: RawHeaders
    if row.raw_headers is not None:
        headers = raw_headers.decode(row.raw_headers)
    else:
        headers = [(str(k), str(v).encode()) for k, v in row.headers.items()]
    return Record(row.topic, row.partition, row.offset, row.raw_key, row.raw_value, headers)


def restored_update(row: ListenerDeadLetter, outcome: Outcome, restored_by: str, now: datetime) -> RestoreDecision:
    """The record's state once restored (``outcome``: applied or duplicate; ``restored_by``:
    ``restore`` or ``replay``, stored on the record)."""
    decision = after_success(row.attempts, now, HOW)
    entry = {**decision.history_entry, "outcome": outcome.value}
    return replace(decision, history_entry=entry, restored_by=restored_by)


def failed_update(row: ListenerDeadLetter, exc: BaseException, policy: RetryPolicy, now: datetime) -> RestoreDecision:
    """The record's state after a failed restore attempt: backoff, or ``failed`` when exhausted."""
    return after_failure(row.attempts, exc, policy, now, HOW)


class ListenerRestoreJob:
    """Restores listener dead letters of ``store`` with ``registry``'s handlers.

    ``consumer_settings``: limits and error classifier (the group is always the key's own);
    ``policy``: attempts and backoff (default: 5 tries, 1 h apart); ``batch_size``: due keys per
    run; ``restored_by``: stored on restored records (``restore``, ``replay``); ``clock``: "now"
    for the next attempt's time (tests move it). Build one with :meth:`from_settings`; the
    constructor takes the store port for tests (``MemoryConsumerStore``) and custom wiring.
    """

    @classmethod
    def from_settings(
        cls,
        settings: KafkaguardSettings,
        registry: HandlerRegistry,
        engine: Engine | None = None,
        *,
        async_engine: AsyncEngine | None = None,
        restored_by: str = "restore",
    ) -> ListenerRestoreJob:
        """The job of ``settings.restore`` (policy, batch size) and ``settings.consumer`` (group,
        limits, classifier) over the listener store in ``engine`` (default: an engine of
        ``settings.database_url`` and ``settings.db_schema``, disposed by :meth:`close`), applying
        through ``registry``'s handlers (``async_engine``: on the same database, for ``async def``
        handlers). Run it with :meth:`run_once` (the configured group by default)."""
        from kafkaguard.db.engine import sync_engine
        from kafkaguard.stores.by_database import consumer_store_for
        from kafkaguard.stores.mongo_documents import is_mongo_url

        owned = None
        if engine is None and is_mongo_url(settings.database_url):
            from kafkaguard.stores.mongo_consumer import MongoConsumerStore

            store = MongoConsumerStore.from_url(settings.database_url)
            return cls(
                store, registry, settings.consumer,
                policy=settings.restore.policy, batch_size=settings.restore.batch_size, restored_by=restored_by,
            )  # fmt: skip
        if engine is None:
            if not settings.database_url:
                raise ConfigurationError("a database URL is needed (KAFKAGUARD_DATABASE_URL or database_url=...)")
            engine = owned = sync_engine(settings.database_url, schema=settings.db_schema)
        job = cls(
            consumer_store_for(engine, async_engine), registry, settings.consumer,
            policy=settings.restore.policy, batch_size=settings.restore.batch_size, restored_by=restored_by,
        )  # fmt: skip
        job._owned_engine = owned
        return job

    def __init__(
        self,
        store: ConsumerStore,
        registry: HandlerRegistry,
        consumer_settings: ConsumerSettings | None = None,
        *,
        policy: RetryPolicy | None = None,
        batch_size: int = 100,
        restored_by: str = "restore",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry
        self.consumer_settings = consumer_settings or ConsumerSettings()
        self.policy = policy or RestoreSettings().policy
        self.batch_size = batch_size
        self.restored_by = restored_by
        self._owned_engine: Engine | None = None

    def close(self) -> None:
        """Dispose the engine :meth:`from_settings` made (nothing else to release)."""
        if self._owned_engine is not None:
            self._owned_engine.dispose()
            self._owned_engine = None

    def _on(self, store: ConsumerStore) -> ListenerRestoreJob:
        return ListenerRestoreJob(
            store, self.registry, self.consumer_settings,
            policy=self.policy, batch_size=self.batch_size, restored_by=self.restored_by, clock=self.clock,
        )  # fmt: skip

    def _applier(self, group: str) -> Applier:
        cs = self.consumer_settings
        if cs.group_id != group:
            cs = cs.model_copy(update={"group_id": group})
        return Applier(self.store, self.registry, cs)

    # -- runs -------------------------------------------------------------------------------------
    def run_once(self, group: str | None = None) -> RunReport:
        """Restore every key of ``group`` (default: ``consumer_settings.group_id``) whose head is due
        (at most ``batch_size`` keys), heads first."""
        group = group or self.consumer_settings.group_id
        keys = [key for _, key in self.store.dead_letters.due_keys(limit=self.batch_size, group=group)]
        return self.process_keys(group, keys)

    def process_keys(self, group: str, keys: Sequence[str]) -> RunReport:
        """Restore ``keys`` of ``group`` now; keys with a type the registry cannot apply are left alone."""
        report = RunReport()
        types = self.store.dead_letters.open_types_by_key(group, keys)
        for key in keys:
            problems = handler_problems(self.registry, types.get(key, set()))
            if problems:
                report.unhandled_keys += 1
                report.unhandled_types.update(problems)
                continue
            try:
                result = self.process_key(group, key)
            except StoreUnavailableError:
                log.warning("database unavailable; the listener restore run of group %s stops here, retried next run",
                            short(group))  # fmt: skip
                break
            report.restored += len(result.restored) + len(result.duplicates)
            report.restored_ids += [*result.restored, *result.duplicates]
            if result.failed_id is not None:
                if result.gave_up:
                    report.failed += 1
                else:
                    report.retried += 1
        if report.unhandled_keys:
            log.warning(
                "listener restore of group %s left %d key(s) alone: the handlers cannot apply %s",
                short(group), report.unhandled_keys,
                ", ".join(f"{t} ({why})" for t, why in report.unhandled_types.items()),
            )  # fmt: skip
        return report

    # -- one key, one record ----------------------------------------------------------------------
    def process_key(self, group: str, key: str) -> RestoreResult:
        """Re-apply every open dead letter of ``key`` in ``group``, oldest first; stop at the first failure."""
        if self.registry.has_async:
            return self.store.run_async(lambda st: self._on(st).process_key_async(group, key))
        with self.store.transaction() as tx:
            tx.lock_key(group, key)
            return self._restore(tx, group, key, tx.open_records(group, key))

    async def process_key_async(self, group: str, key: str) -> RestoreResult:
        """:meth:`process_key` in the store's async transaction (for an event loop)."""
        async with self.store.async_transaction() as atx:
            rows = await atx.run_sync(lambda tx: _locked_records(tx, group, key))
            return await self._restore_async(atx, group, key, rows)

    def process_record(self, dead_letter_id: int) -> RestoreResult:
        """Retry one record: a keyed one restores its whole key from the head (order holds); a keyless
        one (undecodable key) is retried alone. Raises :class:`DeadLetterNotFoundError`."""
        row = self._get(dead_letter_id)
        if row.key is not None:
            return self.process_key(row.consumer_group, row.key)
        if self.registry.has_async:
            return self.store.run_async(lambda st: self._on(st).process_record_async(dead_letter_id))
        with self.store.transaction() as tx:
            return self._restore(tx, row.consumer_group, None, tx.open_record(dead_letter_id))

    async def process_record_async(self, dead_letter_id: int) -> RestoreResult:
        """:meth:`process_record` for an event loop."""
        async with self.store.async_transaction() as atx:  # read on the async engine: no sync I/O here
            found = await atx.run_sync(lambda tx: tx.record(dead_letter_id))
        row = self._found(dead_letter_id, found)
        if row.key is not None:
            return await self.process_key_async(row.consumer_group, row.key)
        async with self.store.async_transaction() as atx:
            rows = await atx.run_sync(lambda tx: tx.open_record(dead_letter_id))
            return await self._restore_async(atx, row.consumer_group, None, rows)

    def _get(self, dead_letter_id: int) -> ListenerDeadLetter:
        return self._found(dead_letter_id, self.store.dead_letters.get(dead_letter_id))

    @staticmethod
    def _found(dead_letter_id: int, row: ListenerDeadLetter | None) -> ListenerDeadLetter:
        if row is None:
            raise DeadLetterNotFoundError(f"listener dead letter {dead_letter_id} does not exist")
        return row

    # -- the records of one transaction -------------------------------------------------------------
    def _resolve(self, row: ListenerDeadLetter, group: str) -> tuple[Record, Event, Registration]:
        record = message_of(row)
        event = decode_record(record, self.consumer_settings)
        reg = self.registry.get(event.type)
        if reg is None:
            raise UnknownEventTypeError(f"no handler for event type {event.type!r} in group {group!r}")
        return record, event, reg

    def _restore(self, tx: ConsumerTx, group: str, key: str | None, rows: list[ListenerDeadLetter]) -> RestoreResult:
        """:meth:`_restore_async` in a sync transaction (nothing in it suspends: sync handlers only)."""
        return _run_to_end(self._restore_async(SyncTxAsAsync(tx), group, key, rows, sync_only=True))

    async def _restore_async(
        self,
        atx: AsyncConsumerTx,
        group: str,
        key: str | None,
        rows: list[ListenerDeadLetter],
        *,
        sync_only: bool = False,
    ) -> RestoreResult:
        """The one restore core: ``rows`` in order, each in a savepoint through the consumer's inbox
        path; the first failure is marked by :func:`failed_update` and stops the run."""
        applier, now = self._applier(group), self.clock()
        result = RestoreResult(group, key)
        for row in rows:
            message = message_of(row)  # once: the log subject and the span's link both read it
            span = self._span(row, message) if spans.active() else None
            try:
                with use_span(span, end_on_exit=False) if span is not None else nullcontext(), about(message):
                    async with atx.savepoint():
                        record, event, reg = self._resolve(row, group)
                        if sync_only and reg.is_async:  # a registry that gained an async handler meanwhile
                            raise ConfigurationError(
                                f"handler of {event.type!r} is async: restore it with an async engine"
                            )
                        outcome = await applier.apply_in_async(atx, record, event, reg, row.attempts + 1, park=False)
            except Exception as exc:  # noqa: BLE001 - the record's failure is stored; outages re-raised
                if span is not None:
                    spans.finish(span, "failed", error=exc)
                self._raise_if_outage(exc)
                change = failed_update(row, exc, self.policy, now)
                await atx.run_sync(lambda tx: tx.mark(row.id, change))  # noqa: B023 - awaited at once
                return self._stopped(result, row, exc, change)
            if span is not None:
                spans.finish(span, "restored" if outcome is not Outcome.DUPLICATE else "duplicate")
            done = restored_update(row, outcome, self.restored_by, now)
            await atx.run_sync(lambda tx: tx.mark(row.id, done))  # noqa: B023 - awaited at once
            (result.duplicates if outcome is Outcome.DUPLICATE else result.restored).append(row.id)
        return result

    @staticmethod
    def _span(row: ListenerDeadLetter, message: Record) -> Span:
        """The ``restore <topic>`` span of ``row`` (whose stored message is ``message``), linked to
        the trace that message carried."""
        return spans.restore_span(
            store="listener", dead_letter_id=row.id, topic=row.topic, key=key_text(message, None),
            headers=message.headers,
        )  # fmt: skip

    def _raise_if_outage(self, exc: BaseException) -> None:
        if isinstance(exc, StoreUnavailableError):
            raise exc
        if self.store.is_connection_error(exc):
            raise StoreUnavailableError(f"the listener dead-letter store is unreachable: {type(exc).__name__}") from exc

    @staticmethod
    def _stopped(
        result: RestoreResult, row: ListenerDeadLetter, exc: BaseException, change: RestoreDecision
    ) -> RestoreResult:
        log.warning(
            "restore stopped group=%s key=%s id=%s %s[%s]@%s: %s",
            result.group, short(row.key), row.id, row.topic, row.partition, row.offset, short(repr(exc), 500),
        )  # fmt: skip
        gave_up = change.status is DeadLetterStatus.FAILED
        return RestoreResult(result.group, result.key, result.restored, result.duplicates, row.id, repr(exc), gave_up)


def _run_to_end(work: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine that never suspends (every await is on a sync transaction) to its result."""
    try:
        work.send(None)
    except StopIteration as done:
        return cast(_T, done.value)
    work.close()
    raise RuntimeError("the sync restore core suspended: an awaitable that needs an event loop was awaited")


def _locked_records(tx: ConsumerTx, group: str, key: str) -> list[ListenerDeadLetter]:
    tx.lock_key(group, key)
    return tx.open_records(group, key)
