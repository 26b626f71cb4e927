"""Chunk mode (``ConsumerSettings.batch_size > 1``, the default): one transaction for a chunk of
already-polled messages.

Same guarantees as per-event mode: every key of the chunk is locked (sorted, so two workers never
deadlock), a record of a blocked key (an open dead letter) is parked behind it in the same
transaction, the inbox rows are inserted in bulk with ``ON CONFLICT DO NOTHING RETURNING event_id``
(rows not returned were there already: duplicates, or id conflicts when their content differs), and
the handlers run in offset order in the same transaction: a batch handler once per run of
consecutive new events of its type (:func:`runs`), a per-event handler once per event. ``async def``
handlers run in one async transaction for the chunk (sync steps through ``run_sync``).

When record ``i`` cannot go in a chunk — undecodable, of an unknown type, an id conflict, a handler
error — :func:`apply_batch` says which records must take the per-event path
(:attr:`ChunkResult.isolate`): a failure found before the transaction cuts the chunk there (the
records before it are applied now); a failure inside it rolls the whole chunk back. The worker then
applies the records before ``i`` as a chunk again, record ``i`` alone through
:meth:`~kafkaguard.consumer.apply.Applier.process` (retries, dead letter), and the rest as chunks:
always in offset order, so a key's records are never reordered. A handler of an event whose chunk
was rolled back runs again; only its database effects are exactly-once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from opentelemetry.trace import Span, use_span

from kafkaguard.consumer.apply import Applier, call_handler, decode_record, inbox_row, position
from kafkaguard.consumer.dead_letters import dead_letter_row
from kafkaguard.consumer.decisions import PARKED, Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, Registration
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.envelope import DecodeError, Event
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.log_json import about, bind, unbind
from kafkaguard.stores.inbox import AsyncConsumerTx, ConsumerTx
from kafkaguard.tracing import spans

log = logging.getLogger("kafkaguard.consumer")

Item = tuple[Record, Event, Registration]


@dataclass(frozen=True)
class ChunkResult:
    """What :func:`apply_batch` did with a chunk.

    ``outcomes``: the durable outcomes of ``records[:len(outcomes)]`` (committed in one transaction).
    ``isolate``: ``(start, stop)`` with ``start >= len(outcomes)``: ``records[start:stop]`` must take
    the per-event path; the records between ``len(outcomes)`` and ``start`` were rolled back and may
    go as a chunk again. ``None`` when every record has its outcome.
    """

    outcomes: list[Outcome]
    isolate: tuple[int, int] | None = None
    why: str = ""
    rolled_back: bool = False
    """A transaction for the chunk was begun and rolled back (the work is redone)."""


class _Isolate(Exception):
    """Roll the chunk back: ``records[start:stop]`` need the per-event path."""

    def __init__(self, start: int, stop: int, why: str) -> None:
        super().__init__(why)
        self.start, self.stop, self.why = start, stop, why


@dataclass
class _Plan:
    """A chunk decoded: per record its event and registration (``None``: an unknown type that the
    registry ignores), and the inbox rows of inbox registrations."""

    records: Sequence[Record]
    events: list[Event] = field(default_factory=list)
    regs: list[Registration | None] = field(default_factory=list)
    rows: list[dict[str, Any] | None] = field(default_factory=list)
    spans: list[tuple[list[int], Span]] = field(default_factory=list)  # (the call's events, its span)

    def __len__(self) -> int:
        return len(self.events)


def _plan(applier: Applier, records: Sequence[Record]) -> tuple[_Plan, tuple[int, int] | None, str]:
    """Decode ``records`` up to the first one that cannot go in a chunk (its span and why)."""
    plan = _Plan(records)
    group, settings, registry = applier.group, applier.settings, applier.registry
    digests: dict[uuid.UUID, bytes] = {}
    for i, r in enumerate(records):
        try:
            event = decode_record(r, settings)
        except DecodeError as exc:
            return plan, (i, i + 1), exc.reason.value
        reg = registry.get(event.type)
        row = None
        if reg is None:
            if not registry.ignore_unknown:
                return plan, (i, i + 1), "unknown_type"
        elif reg.inbox:
            row = inbox_row(group, event, r)
            if digests.setdefault(event.event_id, row["content_hash"]) != row["content_hash"]:
                return plan, (i, i + 1), "id_conflict"  # one id, two contents in this chunk
        plan.events.append(event)
        plan.regs.append(reg)
        plan.rows.append(row)
    return plan, None, ""


def _blocked_keys(tx: ConsumerTx, group: str, keys: Sequence[str]) -> set[str]:
    """The keys of ``keys`` (sorted, locked) with an open dead letter: bisected with ``any_blocked``,
    a few round trips for a few blocked keys (only when the first check found one)."""
    if len(keys) == 1:
        return {keys[0]}
    mid = len(keys) // 2
    out: set[str] = set()
    for half in (keys[:mid], keys[mid:]):
        if tx.any_blocked(group, half):
            out |= _blocked_keys(tx, group, half)
    return out


_UNSEEN: Any = object()  # no inbox row for this id


def _prepare(tx: ConsumerTx, applier: Applier, plan: _Plan) -> tuple[list[Outcome], list[int]]:
    """The steps before the handlers, in ``tx``: the outcomes of the chunk's records and the indices
    of the new events to hand to handlers, in offset order. Raise :class:`_Isolate` for an id conflict."""
    group = applier.group
    events, regs, rows = plan.events, plan.regs, plan.rows
    keys = sorted({e.key for e, reg in zip(events, regs, strict=True) if reg is not None})
    outcomes = [Outcome.IGNORED] * len(events)
    if not keys:
        return outcomes, []
    tx.lock_keys(group, keys)  # one round trip, not one per key; sorted: no deadlock
    blocked = _blocked_keys(tx, group, keys) if tx.any_blocked(group, keys) else set()
    fresh: dict[uuid.UUID, dict[str, Any]] = {}
    check: list[uuid.UUID] = []  # inbox rows to compare: existing ones, and those of blocked keys
    for e, row in zip(events, rows, strict=True):
        if row is None:
            continue
        if e.key in blocked:
            check.append(e.event_id)
        else:
            fresh.setdefault(e.event_id, row)
    new_ids = tx.insert_inbox_batch(group, list(fresh.values())) if fresh else set()
    if len(new_ids) < len(fresh):
        check += [i for i in fresh if i not in new_ids]
    digests = tx.hashes(group, check) if check else {}
    calls: list[int] = []
    applied_here: set[uuid.UUID] = set()
    for i, (e, reg, row) in enumerate(zip(events, regs, rows, strict=True)):
        if reg is None:
            continue
        is_blocked = e.key in blocked
        if row is not None:
            event_id = e.event_id
            if event_id in applied_here:
                outcomes[i] = Outcome.DUPLICATE  # a second copy inside the chunk
                continue
            if is_blocked or event_id not in new_ids:
                digest = digests.get(event_id, _UNSEEN)
                if digest is None or digest == row["content_hash"]:
                    outcomes[i] = Outcome.DUPLICATE  # rows without a digest count as the same event
                    continue
                if digest is not _UNSEEN or not is_blocked:  # other content (or the row went meanwhile)
                    raise _Isolate(i, i + 1, "id_conflict")
        if is_blocked:  # as Applier.prepare: after the dedupe, parked behind the key's dead letter
            parked = dead_letter_row(
                group, plan.records[i], reason=PARKED, event=e, exc=None, attempts=0, status=DeadLetterStatus.PARKED
            )
            tx.insert_dead_letter(parked)
            outcomes[i] = Outcome.PARKED
            continue
        if row is not None:
            applied_here.add(e.event_id)
        outcomes[i] = Outcome.APPLIED
        calls.append(i)
    return outcomes, calls


def runs_of(regs: Sequence[Registration | None], indices: Sequence[int]) -> list[list[int]]:
    """Cut ``indices`` (new events in offset order; ``regs[i]`` is event ``i``'s registration) into
    the calls to make, in order: consecutive events of one batch registration form one call; every
    event of a per-event registration is a call."""
    out: list[list[int]] = []
    for i in indices:
        reg = regs[i]
        if reg is not None and reg.batch and out and regs[out[-1][0]] is reg:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def runs(items: Sequence[Item]) -> list[list[Item]]:
    """:func:`runs_of` on ``(record, event, registration)`` items."""
    regs = [reg for _, _, reg in items]
    return [[items[i] for i in call] for call in runs_of(regs, range(len(items)))]


@contextmanager
def _observed(plan: _Plan, reg: Registration, group: str, call: list[int]) -> Iterator[None]:
    """Around one handler call of the chunk: its log lines concern its record (per-event handlers),
    and with tracing on it runs in a ``process`` span kept on ``plan`` until the chunk's outcome is
    known (:func:`_finish_spans`)."""
    if reg.batch:
        if not spans.active():
            yield
            return
        records = [plan.records[i] for i in call]
        topics = {r.topic for r in records}
        span = spans.batch_process_span(
            topic=next(iter(topics)) if len(topics) == 1 else None, group=group, headers=[r.headers for r in records]
        )
        plan.spans.append((call, span))
        with use_span(span, end_on_exit=False):
            yield
        return
    i = call[0]
    record = plan.records[i]
    with about(record):
        if not spans.active():
            yield
            return
        span = _event_span(plan, i, group)
        plan.spans.append((call, span))
        with use_span(span, end_on_exit=False):
            yield


def _event_span(plan: _Plan, i: int, group: str) -> Span:
    r, e = plan.records[i], plan.events[i]
    return spans.process_span(
        topic=r.topic, partition=r.partition, offset=r.offset, key=e.key, group=group, headers=r.headers,
        event_id=str(e.event_id),
    )  # fmt: skip


def _finish_spans(plan: _Plan, outcomes: Sequence[Outcome] | None, group: str) -> None:
    """End the chunk's spans: with each call's outcome once committed (and a span for each event that
    needed no handler: duplicates, parked), or ``rolled_back`` (``outcomes`` None)."""
    if outcomes is None:
        for _, span in plan.spans:
            spans.finish(span, "rolled_back", failed=True)
        return
    called: set[int] = set()
    for call, span in plan.spans:
        called.update(call)
        spans.finish(span, outcomes[call[0]].value)
    for i, outcome in enumerate(outcomes):
        if i not in called and plan.regs[i] is not None:
            spans.finish(_event_span(plan, i, group), outcome.value)


def _batch_ctx(session: Any, group: str, plan: _Plan, call: list[int]) -> BatchContext[Any]:
    return BatchContext[Any](session, group, [position(plan.records[i]) for i in call])


def _call_sync(session: Any, group: str, plan: _Plan, reg: Registration, call: list[int]) -> None:
    if spans.active():
        with _observed(plan, reg, group, call):
            _call_plain(session, group, plan, reg, call)
        return
    if reg.batch:
        _call_plain(session, group, plan, reg, call)
        return
    token = bind(plan.records[call[0]])  # the hot path: no context manager per event
    try:
        _call_plain(session, group, plan, reg, call)
    finally:
        unbind(token)


def _call_plain(session: Any, group: str, plan: _Plan, reg: Registration, call: list[int]) -> None:
    if reg.batch:
        reg.func([plan.events[i] for i in call], _batch_ctx(session, group, plan, call))
    else:
        i = call[0]
        call_handler(reg, session, group, plan.records[i], plan.events[i], attempt=1)


def _call_sync_in(tx: ConsumerTx, *, group: str, plan: _Plan, reg: Registration, call: list[int]) -> None:
    _call_sync(tx.session, group, plan, reg, call)


def _span(call: list[int]) -> tuple[int, int]:
    """The records a failed call covers (a batch handler's run: its first to its last event)."""
    return call[0], call[-1] + 1


def _in_tx(tx: ConsumerTx, applier: Applier, plan: _Plan) -> list[Outcome]:
    outcomes, calls = _prepare(tx, applier, plan)
    regs = plan.regs
    for call in runs_of(regs, calls):
        reg = regs[call[0]]
        assert reg is not None
        try:
            _call_sync(tx.session, applier.group, plan, reg, call)
        except Exception as exc:
            applier.raise_if_store_down(exc)
            raise _Isolate(*_span(call), f"handler error {exc!r}") from exc
    return outcomes


async def _in_async_tx(atx: AsyncConsumerTx, applier: Applier, plan: _Plan) -> list[Outcome]:
    outcomes, calls = await atx.run_sync(lambda tx: _prepare(tx, applier, plan))
    regs, group = plan.regs, applier.group
    for call in runs_of(regs, calls):
        reg = regs[call[0]]
        assert reg is not None
        try:
            if not reg.is_async:  # on the sync form of the same transaction: one order for the key
                await atx.run_sync(functools.partial(_call_sync_in, group=group, plan=plan, reg=reg, call=call))
            else:
                with _observed(plan, reg, group, call):
                    if reg.batch:
                        await reg.func([plan.events[i] for i in call], _batch_ctx(atx.session, group, plan, call))
                    else:
                        i = call[0]
                        await call_handler(reg, atx.session, group, plan.records[i], plan.events[i], attempt=1)
        except Exception as exc:
            applier.raise_if_store_down(exc)
            raise _Isolate(*_span(call), f"handler error {exc!r}") from exc
    return outcomes


def _run(applier: Applier, plan: _Plan) -> list[Outcome]:
    """``plan`` in one transaction (an async one when a handler of the chunk is ``async def``)."""
    if any(reg is not None and reg.is_async for reg in plan.regs):

        async def work() -> list[Outcome]:
            async with applier.store.async_transaction() as atx:
                return await _in_async_tx(atx, applier, plan)

        # The applier's one event loop: the async engine's connections belong to it.
        return cast("list[Outcome]", applier._run_async(work()))
    with applier.store.transaction() as tx:
        return _in_tx(tx, applier, plan)


def apply_batch(applier: Applier, records: Sequence[Record]) -> ChunkResult:
    """Apply ``records`` in one transaction as far as they can go in one; see :class:`ChunkResult`.

    Raises :class:`StoreUnavailableError` on an outage (nothing of the chunk is then durable).
    """
    plan, cut, why = _plan(applier, records)
    if not plan:
        assert cut is not None
        return ChunkResult([], cut, why)
    try:
        outcomes = _run(applier, plan)
    except BaseException as exc:  # noqa: BLE001 - ends the spans; _rolled_back re-raises outages and shutdowns
        if plan.spans:
            _finish_spans(plan, None, applier.group)
        return _rolled_back(applier, records, exc)
    if spans.active():
        _finish_spans(plan, outcomes, applier.group)
    return ChunkResult(outcomes, cut, why)


def _rolled_back(applier: Applier, records: Sequence[Record], exc: BaseException) -> ChunkResult:
    """What to do after the chunk's transaction failed with ``exc`` (re-raised: an outage, a shutdown)."""
    if isinstance(exc, _Isolate):
        log.info(
            "chunk of %d rolled back group=%s: %s at %s; it goes on around it",
            len(records), applier.group, exc.why, records[exc.start].where(),
        )  # fmt: skip
        return ChunkResult([], (exc.start, exc.stop), exc.why, rolled_back=True)
    if isinstance(exc, StoreUnavailableError) or not isinstance(exc, Exception):
        raise exc
    # e.g. a refused commit: which event is unknown, all go per event
    applier.raise_if_store_down(exc)
    log.info("chunk of %d rolled back group=%s: %r; per-event processing", len(records), applier.group, exc)
    return ChunkResult([], (0, len(records)), repr(exc), rolled_back=True)
