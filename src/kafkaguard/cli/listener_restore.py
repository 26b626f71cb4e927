"""The listener restore job: due listener dead letters re-run through the handlers and the inbox.

Per key, :func:`kafkaguard.consumer.restore.restore_key` applies the key's open records in id order
under the key lock the consumer also takes; this module chooses the consumer group, picks its due
keys and checks the handler registry before any record of a key changes:

- the group is ``--group``, else the configured ``consumer.group_id`` (set in the environment or
  the config file), else the one group that has open listener dead letters; records of several
  groups and no choice is refused (each group has its own handlers);
- a key whose open records include an event type the registry has no handler for is left as it
  is and reported (``unhandled_keys``), instead of being marked failed for a wrong ``--app``;
- async handlers are restored like sync ones: with an ``async_engine`` (built once per command on
  the same URL and schema) when the registry holds any.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.cli.replay_plan import handler_problems, listing
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.restore import due_keys, restore_key
from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus
from kafkaguard.db.tables import listener_dead_letters as DL
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.logtext import short
from kafkaguard.restore.publisher_job import RunReport
from kafkaguard.settings import KafkaguardSettings

log = logging.getLogger("kafkaguard.restore.listener")


def load_registry(spec: str | None) -> HandlerRegistry:
    """Import ``module:attribute`` and return the HandlerRegistry it names (see :func:`load_handlers`)."""
    return load_handlers(spec)


@dataclass
class ListenerRunReport(RunReport):
    """A listener run's report: also the keys left alone because the registry cannot apply them."""

    unhandled_keys: int = 0
    unhandled_types: dict[str, str] = field(default_factory=dict)  # event type -> why

    def add(self, other: RunReport) -> None:
        super().add(other)
        if isinstance(other, ListenerRunReport):
            self.unhandled_keys += other.unhandled_keys
            self.unhandled_types.update(other.unhandled_types)


def configured_group(settings: KafkaguardSettings) -> str | None:
    """``consumer.group_id`` when it was set (environment or config file), not the default."""
    return settings.consumer.group_id if "group_id" in settings.consumer.model_fields_set else None


def groups_with_open_records(engine: Engine, *, limit: int = 20) -> list[str]:
    """Consumer groups that have open listener dead letters (at most ``limit``), sorted."""
    q = (
        select(DL.c.consumer_group)
        .where(DL.c.status.in_(OPEN_STATUSES))
        .group_by(DL.c.consumer_group)
        .order_by(DL.c.consumer_group)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [str(g) for g in conn.execute(q).scalars()]


def resolve_group(engine: Engine, option: str | None, settings: KafkaguardSettings) -> str | None:
    """The group a listener restore runs under (see the module docstring); None when no group has
    open listener dead letters (nothing to do). Raises :class:`UsageProblem` when several do."""
    chosen = option or configured_group(settings)
    if chosen:
        return chosen
    groups = groups_with_open_records(engine)
    if len(groups) <= 1:
        return groups[0] if groups else None
    raise UsageProblem(
        f"listener dead letters of several consumer groups are open ({listing(groups)}): pass --group "
        "(each group is restored with its own handlers; --app loads one service's)"
    )


def open_types_by_key(engine: Engine, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
    """The event types of each key's open records in ``group`` (what a restore of the key applies)."""
    if not keys:
        return {}
    q = (
        select(DL.c.key, DL.c.type)
        .where(DL.c.consumer_group == group, DL.c.key.in_(list(keys)), DL.c.status.in_(OPEN_STATUSES))
        .group_by(DL.c.key, DL.c.type)
    )
    types: dict[str, set[str | None]] = {}
    with engine.connect() as conn:
        for key, event_type in conn.execute(q):
            types.setdefault(str(key), set()).add(event_type)
    return types


def listener_process_keys(
    settings: KafkaguardSettings,
    engine: Engine,
    keys: list[str],
    *,
    app: str | None = None,
    registry: HandlerRegistry | None = None,
    group: str | None = None,
    async_engine: AsyncEngine | None = None,
) -> ListenerRunReport:
    """Restore ``keys`` of ``group`` (default: the configured consumer group) now, heads first.

    Keys with an open record the registry cannot apply are not touched (``unhandled_keys``).
    ``async_engine``: for async handlers (default: one per key, see :func:`restore_key`).
    """
    registry = registry or load_handlers(app)
    group = group or settings.consumer.group_id
    report = ListenerRunReport()
    types = open_types_by_key(engine, group, keys)
    for key in keys:
        problems = handler_problems(registry, types.get(key, set()))
        if problems:
            report.unhandled_keys += 1
            report.unhandled_types.update(problems)
            continue
        try:
            result = restore_key(
                engine, registry, group, key, restored_by="restore", policy=settings.restore.policy,
                consumer_settings=settings.consumer, async_engine=async_engine,
            )  # fmt: skip
        except StoreUnavailableError:
            log.warning("database unavailable; the listener restore run of group %s stops here, retried next run",
                        short(group))  # fmt: skip
            break
        report.restored += len(result.restored) + len(result.duplicates)
        report.restored_ids += [*result.restored, *result.duplicates]
        if result.failed_id is not None:
            if _status(engine, result.failed_id) == DeadLetterStatus.FAILED.value:
                report.failed += 1
            else:
                report.retried += 1
    if report.unhandled_keys:
        log.warning(
            "listener restore of group %s left %d key(s) alone: the handlers cannot apply %s",
            short(group), report.unhandled_keys, listing(f"{t} ({why})" for t, why in report.unhandled_types.items()),
        )  # fmt: skip
    return report


def _status(engine: Engine, record_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(DL.c.status).where(DL.c.id == record_id)).scalar_one_or_none()


def listener_run_once(
    settings: KafkaguardSettings,
    engine: Engine,
    *,
    app: str | None = None,
    registry: HandlerRegistry | None = None,
    group: str | None = None,
    async_engine: AsyncEngine | None = None,
) -> ListenerRunReport:
    """Restore every key of ``group`` (default: the configured consumer group) whose head is due."""
    group = group or settings.consumer.group_id
    keys = [key for _, key in due_keys(engine, limit=settings.restore.batch_size, group=group)]
    return listener_process_keys(
        settings, engine, keys, app=app, registry=registry, group=group, async_engine=async_engine
    )
