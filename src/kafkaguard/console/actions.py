"""The console's writes: retry, redrive and discard, through the restore jobs and store functions the CLI uses.

- **retry** resets the chosen open records to pending (the store function ``dead-letters replay``
  uses) and restores them now through the restore jobs themselves — the publisher job's
  ``process_key`` and the listener job's ``restore_key`` — key by key under their per-key locks (a
  key another run holds is skipped, never processed twice), heads first, the parked records of each
  key after their head in arrival order; the summary is read back from the records' statuses;
- **redrive** (publisher records) is a retry with the ``republish`` strategy whatever
  ``restore.publisher_strategy`` says: the event goes back to its original topic;
- **discard** marks records discarded with the operator's reason in their history;
- **edit-and-retry**: :mod:`kafkaguard.console.edit`.

Every action checks before it changes: a refusal raises and leaves the records as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, text

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db import columns as C
from kafkaguard.errors import ConfigurationError
from kafkaguard.restore.listener_functions import restore_key, retry_dead_letter
from kafkaguard.restore.listener_job import handler_problems
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import (
    Filters,
    Store,
    discard,
    replay_candidates,
    reset_to_pending,
    statuses_of,
)

OPEN = ("pending", "failed")  # what a retry resets; parked records follow their key's head


class ActionRefused(ConfigurationError):
    """The action cannot run as asked; nothing was changed. The message says why."""


@dataclass
class Result:
    """What an action did: how many records were asked for and changed, and one line for the page."""

    requested: int
    changed: int
    message: str
    ids: list[int] = field(default_factory=list)
    cancelled: bool = False


class Progress(Protocol):
    """How a long action reports and learns it should stop (:class:`kafkaguard.console.jobs.Progress`)."""

    def advance(self, records: int) -> None:
        """``records`` more were processed (restored or not)."""

    def cancelled(self) -> bool:
        """Whether the operator asked to stop: the action stops before its next key."""


class _Silent:
    def advance(self, records: int) -> None:
        pass

    def cancelled(self) -> bool:
        return False


@dataclass(frozen=True)
class RetryPlan:
    """A checked retry: the candidates grouped into units (one key, or one keyless record), ready to run."""

    settings: KafkaguardSettings
    engine: Engine
    store: Store
    requested: int
    units: list[list[Row[Any]]]
    by: str
    registry: HandlerRegistry | None
    republish: bool

    @property
    def total(self) -> int:
        """Records the plan resets and restores (the parked ones behind them not counted)."""
        return sum(len(u) for u in self.units)


def plan_retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, ids: list[int], *, by: str,
    registry: HandlerRegistry | None, republish: bool = False,
) -> RetryPlan:  # fmt: skip
    """Check a retry (or redrive) of the open records ``ids``; raises :class:`ActionRefused`, changing nothing."""
    if not ids:
        raise ActionRefused("no records chosen")
    if store is Store.LISTENER and registry is None:
        raise ActionRefused(
            "retrying listener dead letters runs their handlers: start the console with --app module:registry"
        )
    if republish:
        if store is not Store.PUBLISHER:
            raise ActionRefused("redrive applies to publisher dead letters (they keep their original topic)")
        restore = settings.restore.model_copy(update={"publisher_strategy": PublisherStrategy.REPUBLISH})
        settings = settings.model_copy(update={"restore": restore})
    with engine.connect() as conn:
        candidates = replay_candidates(conn, store, Filters(ids=tuple(ids)), statuses=OPEN, limit=len(ids))
        if not candidates:
            raise ActionRefused("none of the chosen records is open (pending or failed)")
        if registry is not None and store is Store.LISTENER:
            _check_handlers(conn, registry, candidates)
    if store is Store.PUBLISHER:
        _publisher(settings, engine).close()  # the job's settings are checked before anything changes
    return RetryPlan(settings, engine, store, len(ids), units(candidates), by, registry, republish)


def run_retry(plan: RetryPlan, progress: Progress | None = None) -> Result:
    """Carry out ``plan`` key by key: reset the unit's records to pending, due now, and restore the key.

    A cancel takes effect between keys: the keys not reached are left exactly as they were (not
    reset). The summary comes from the records' statuses afterwards.
    """
    report = progress or _Silent()
    store, engine = plan.store, plan.engine
    restorer = _publisher(plan.settings, engine) if store is Store.PUBLISHER else None
    reset: list[int] = []
    restored_ids: list[int] = []
    stopped = False
    try:
        for unit in plan.units:
            if report.cancelled():
                stopped = True
                break
            with engine.begin() as conn:
                ids = tuple(c.id for c in unit)
                done_reset = reset_to_pending(conn, store, Filters(ids=ids), limit=len(ids), by=plan.by)
            reset += done_reset
            if done_reset:  # changed meanwhile (restored, discarded): left alone
                head = next(c for c in unit if c.id in set(done_reset))
                if restorer is not None:
                    restored_ids += _republish(restorer, head.key, head.id)
                else:
                    assert plan.registry is not None
                    restored_ids += _reapply(plan.settings, engine, plan.registry, head)
            report.advance(len(unit))
    finally:
        if restorer is not None:
            restorer.close()  # flushes: every republished record is acknowledged or failed
    return _summary(plan, reset, restored_ids, stopped)


def _summary(plan: RetryPlan, reset: list[int], restored_ids: list[int], stopped: bool) -> Result:
    with plan.engine.connect() as conn:
        statuses = statuses_of(conn, plan.store, reset)
    done = [i for i in reset if statuses.get(i, ("missing", None))[0] == "restored"]
    behind = len(set(restored_ids) - set(reset))
    verb = "redrive" if plan.republish else "retry"
    message = f"{verb} of {plan.store.value} dead letters: {len(done)} of {len(reset)} restored"
    if behind:
        message += f" (and {behind} parked record(s) of the same keys)"
    failed = [f"#{i} {statuses[i][0]}" + (f" ({statuses[i][1]})" if statuses[i][1] else "")
              for i in reset if i in statuses and i not in done]  # fmt: skip
    if failed:
        message += "; not restored: " + ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else "")
    if stopped:
        message += f"; cancelled: {plan.total - len(reset)} record(s) not reached were left as they were"
    return Result(plan.requested, len(done) + behind, message, reset, cancelled=stopped)


def retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, ids: list[int], *, by: str,
    registry: HandlerRegistry | None, republish: bool = False,
) -> Result:  # fmt: skip
    """Check and run a retry at once (:func:`plan_retry`, then :func:`run_retry`)."""
    return run_retry(plan_retry(settings, engine, store, ids, by=by, registry=registry, republish=republish))


def units(candidates: Sequence[Row[Any]]) -> list[list[Row[Any]]]:
    """Candidates grouped by (consumer group, key), in the order of each key's first id; a keyless one alone."""
    by_key: dict[tuple[str | None, str], list[Row[Any]]] = {}
    out: list[list[Row[Any]]] = []
    for c in candidates:
        if c.key is None:
            out.append([c])
            continue
        slot = (c.consumer_group, c.key)
        if slot not in by_key:
            by_key[slot] = []
            out.append(by_key[slot])
        by_key[slot].append(c)
    return out


OPEN_TYPES_SQL = f"""
SELECT DISTINCT type FROM {C.LISTENER_DEAD_LETTERS}
WHERE consumer_group = :g AND key = ANY(:keys) AND status = ANY(:open)
"""  # noqa: S608 - constant table name


def _check_handlers(conn: Connection, registry: HandlerRegistry, candidates: Sequence[Row[Any]]) -> None:
    """Refuse when the registry lacks a handler for a type the restore would apply (parked ones included)."""
    types: set[str | None] = {c.type for c in candidates}
    for group in {c.consumer_group for c in candidates}:
        keys = [c.key for c in candidates if c.consumer_group == group and c.key is not None]
        params = {"g": group, "keys": keys, "open": list(C.OPEN_STATUSES)}
        types |= {r[0] for r in conn.execute(text(OPEN_TYPES_SQL), params)}
    problems = handler_problems(registry, types)
    if problems:
        named = ", ".join(f"{t} ({why})" for t, why in list(problems.items())[:5])
        raise ActionRefused(f"nothing was changed: the console's --app cannot restore event type(s) {named}")


def _publisher(settings: KafkaguardSettings, engine: Engine) -> PublisherRestoreJob:
    return PublisherRestoreJob.from_settings(settings, engine)


def _republish(job: PublisherRestoreJob, key: str | None, record_id: int) -> list[int]:
    """One key's open records through the publisher restore job (its per-key lock), or one keyless record."""
    report = job.process_record(record_id) if key is None else job.process_key(key)
    return list(report.restored_ids)


def _reapply(settings: KafkaguardSettings, engine: Engine, registry: HandlerRegistry, head: Row[Any]) -> list[int]:
    """One key's open records of the head's consumer group through the listener restore job (the key
    lock the consumer takes too), or one keyless record; returns the ids restored or found duplicate."""
    group = str(head.consumer_group)
    consumer = settings.consumer.model_copy(update={"group_id": group})
    policy = settings.restore.policy
    if head.key is None:
        result = retry_dead_letter(engine, registry, int(head.id), restored_by="console", policy=policy,
                                   consumer_settings=consumer)  # fmt: skip
    else:
        result = restore_key(engine, registry, group, head.key, restored_by="console", policy=policy,
                             consumer_settings=consumer)  # fmt: skip
    return [*result.restored, *result.duplicates]


def discard_records(engine: Engine, store: Store, ids: list[int], *, by: str, reason: str) -> Result:
    """Mark ``ids`` discarded with ``reason``; raises :class:`ActionRefused` without a reason."""
    if not reason.strip():
        raise ActionRefused("a reason is needed to discard (it is kept in the records' history)")
    if not ids:
        raise ActionRefused("no records chosen")
    with engine.begin() as conn:
        done = discard(conn, store, Filters(ids=tuple(ids)), limit=len(ids), by=by, reason=reason.strip())
    return Result(len(ids), len(done), f"discarded {len(done)} of {len(ids)} {store.value} dead letter(s)", done)
