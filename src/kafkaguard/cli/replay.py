"""``dead-letters replay``: validate, reset and restore dead letters now, and say what came of it.

Order of work (the guarantee: a refusal changes nothing):

1. find the candidates (the filters, status ``pending`` or ``failed``, oldest first, ``limit``);
2. check them (:mod:`kafkaguard.cli.replay_plan`): named ids, the consumer group, the handlers,
   the publisher job's settings — any problem refuses before a record changes;
3. reset exactly the checked records to ``pending``, due now (history keeps the replay);
4. restore them key by key, heads first: listener records under their own consumer group through
   :func:`kafkaguard.consumer.restore.restore_key` (a keyless one through ``retry_dead_letter``),
   publisher records through the publisher restore job;
5. read their statuses back: the summary and the exit code come from the database, not from
   what the restore functions returned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.progress import Progress
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.cli.common import out
from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.listener_restore import open_types_by_key
from kafkaguard.cli.replay_plan import (
    REPLAYABLE,
    Candidate,
    Summary,
    check_handlers,
    check_requested_ids,
    group_of,
    handler_problems,
    listing,
    summarise,
)
from kafkaguard.cli.restore_runners import publisher_job
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.restore import restore_key, retry_dead_letter
from kafkaguard.consumer.restore_loop import async_engine_for
from kafkaguard.logtext import short
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import (
    Filters,
    Store,
    listener_group_exists,
    listener_groups,
    open_listener_count,
    replay_candidates,
    reset_to_pending,
    statuses_of,
)

log = logging.getLogger("kafkaguard.cli.replay")


@dataclass(frozen=True)
class ReplayRequest:
    """What the operator asked for."""

    store: Store
    filters: Filters
    limit: int
    rate: float = 0.0  # records per second, 0 = unlimited
    app: str | None = None
    registry: HandlerRegistry | None = None  # loaded from ``app`` (listener store)
    by: str = "operator"


@dataclass(frozen=True)
class Checked:
    """Candidates that passed every check, and the group they are restored under (listener)."""

    candidates: list[Candidate]
    group: str | None
    others_of_keys: int = 0  # open records of the same keys that are not candidates (applied too)


def find_candidates(conn: Connection, store: Store, filters: Filters, *, limit: int) -> list[Candidate]:
    """Records matching ``filters`` that ``replay`` would reset, oldest first."""
    rows = replay_candidates(conn, store, filters, statuses=REPLAYABLE, limit=limit)
    return [Candidate(int(r.id), str(r.status), r.key, r.type, r.consumer_group) for r in rows]


def check(engine: Engine, request: ReplayRequest, candidates: list[Candidate]) -> Checked:
    """Refuse (raise) unless every candidate can be replayed as asked; see the module docstring."""
    store, filters = request.store, request.filters
    if filters.ids:
        with engine.connect() as conn:
            found = statuses_of(conn, store, list(filters.ids))
        check_requested_ids(filters.ids, candidates, {i: s for i, (s, _) in found.items()})
    if store is not Store.LISTENER or not candidates:
        return Checked(candidates, None)
    group = group_of(candidates, filters.consumer_group)
    if request.registry is None:
        return Checked(candidates, group)
    keys = list(dict.fromkeys(c.key for c in candidates if c.key is not None))
    types_by_key = open_types_by_key(engine, group, keys)
    types = {t for ts in types_by_key.values() for t in ts} | {c.type for c in candidates}
    check_handlers(request.app or "--app", group, handler_problems(request.registry, types))
    with engine.connect() as conn:
        others = open_listener_count(conn, group, keys) - sum(1 for c in candidates if c.key is not None)
    return Checked(candidates, group, max(0, others))


def unknown_group(engine: Engine, group: str) -> UsageProblem | None:
    """A refusal when ``group`` has no listener dead letters at all (a typo), naming the groups that do."""
    with engine.connect() as conn:
        if listener_group_exists(conn, group):
            return None
        known = listener_groups(conn, limit=20)
    return UsageProblem(
        f"consumer group {short(group, 60)} has no listener dead letters; groups that have some: "
        f"{listing(known) if known else 'none'}"
    )


def execute(settings: KafkaguardSettings, engine: Engine, request: ReplayRequest, checked: Checked) -> Summary:
    """Reset the checked candidates, restore them now, and summarise from their statuses."""
    job = publisher_job(settings, engine) if request.store is Store.PUBLISHER else None  # settings checked first
    ids = [c.id for c in checked.candidates]
    with engine.begin() as conn:
        reset = reset_to_pending(
            conn, request.store, Filters(ids=tuple(ids), consumer_group=checked.group), limit=len(ids), by=request.by
        )
    if len(reset) < len(ids):
        log.warning("%d record(s) changed while the replay was checked and were left alone", len(ids) - len(reset))
    chosen = [c for c in checked.candidates if c.id in set(reset)]
    restored_ids: list[int] = []
    registry = request.registry if job is None else None
    try:
        with (
            async_engine_for(engine, registry) as async_engine,
            Progress(console=out, disable=not out.is_terminal) as progress,
        ):
            restore = (
                _listener_restorer(settings, engine, request, checked, async_engine)
                if job is None
                else _publisher_restorer(job)
            )
            task = progress.add_task("replaying", total=len(chosen))
            for unit in _units(chosen):
                started = time.monotonic()
                done = restore(unit)
                restored_ids += done
                progress.advance(task, len(unit))
                if request.rate > 0:  # a rate limit, not synchronisation
                    time.sleep(max(0.0, max(len(done), len(unit)) / request.rate - (time.monotonic() - started)))
    finally:
        if job is not None and job.producer is not None:
            job.producer.close()  # flushes: every republished record is acknowledged or failed
    with engine.connect() as conn:
        statuses = statuses_of(conn, request.store, reset)
    return summarise(request.store.value, checked.group, reset, statuses, restored_ids)


def _units(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Candidates grouped by key, in the order of each key's first id; a keyless record is alone."""
    by_key: dict[str, list[Candidate]] = {}
    units: list[list[Candidate]] = []
    for c in candidates:
        if c.key is None:
            units.append([c])
        elif c.key in by_key:
            by_key[c.key].append(c)
        else:
            by_key[c.key] = [c]
            units.append(by_key[c.key])
    return units


def _listener_restorer(
    settings: KafkaguardSettings,
    engine: Engine,
    request: ReplayRequest,
    checked: Checked,
    async_engine: AsyncEngine | None = None,
) -> Callable[[list[Candidate]], list[int]]:
    assert request.registry is not None and checked.group is not None
    registry, group, policy = request.registry, checked.group, settings.restore.policy
    consumer = settings.consumer.model_copy(update={"group_id": group})

    def restore(unit: list[Candidate]) -> list[int]:
        head = unit[0]
        if head.key is None:
            result = retry_dead_letter(
                engine, registry, head.id, restored_by="replay", policy=policy, consumer_settings=consumer,
                async_engine=async_engine,
            )  # fmt: skip
        else:
            result = restore_key(
                engine, registry, group, head.key, restored_by="replay", policy=policy, consumer_settings=consumer,
                async_engine=async_engine,
            )  # fmt: skip
        return [*result.restored, *result.duplicates]

    return restore


def _publisher_restorer(job: PublisherRestoreJob) -> Callable[[list[Candidate]], list[int]]:
    def restore(unit: list[Candidate]) -> list[int]:
        key = unit[0].key
        if key is None:  # a keyless record is its own head: retried alone (it fails again until fixed)
            return job.process_record(unit[0].id).restored_ids
        return job.process_key(key).restored_ids

    return restore
