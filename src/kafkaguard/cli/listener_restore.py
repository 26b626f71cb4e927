"""CLI glue of the listener restore job (:class:`kafkaguard.restore.listener_job.ListenerRestoreJob`):
which consumer group a run works for, and the job built from settings.

The group is ``--group``, else the configured ``consumer.group_id`` (set in the environment or the
config file), else the one group that has open listener dead letters; records of several groups
and no choice is refused (each group has its own handlers).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.cli.replay_plan import listing
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.restore.listener_job import ListenerRestoreJob
from kafkaguard.restore.report import RunReport
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.listener_dead_letters import SqlListenerDeadLetters

__all__ = [
    "configured_group",
    "groups_with_open_records",
    "listener_job",
    "listener_process_keys",
    "listener_run_once",
    "open_types_by_key",
    "resolve_group",
]


def configured_group(settings: KafkaguardSettings) -> str | None:
    """``consumer.group_id`` when it was set (environment or config file), not the default."""
    return settings.consumer.group_id if "group_id" in settings.consumer.model_fields_set else None


def groups_with_open_records(engine: Engine, *, limit: int = 20) -> list[str]:
    """Consumer groups that have open listener dead letters (at most ``limit``), sorted."""
    return SqlListenerDeadLetters(engine).groups_with_open_records(limit=limit)


def open_types_by_key(engine: Engine, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
    """The event types of each key's open records in ``group`` (what a restore of the key applies)."""
    return SqlListenerDeadLetters(engine).open_types_by_key(group, keys)


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


def listener_job(
    settings: KafkaguardSettings,
    engine: Engine,
    registry: HandlerRegistry,
    *,
    async_engine: AsyncEngine | None = None,
    restored_by: str = "restore",
) -> ListenerRestoreJob:
    """The job of ``settings.restore`` (policy, batch size) on ``engine`` with ``registry``'s handlers."""
    return ListenerRestoreJob.from_settings(
        settings, registry, engine, async_engine=async_engine, restored_by=restored_by
    )


def listener_process_keys(
    settings: KafkaguardSettings,
    engine: Engine,
    keys: list[str],
    *,
    app: str | None = None,
    registry: HandlerRegistry | None = None,
    group: str | None = None,
    async_engine: AsyncEngine | None = None,
) -> RunReport:
    """Restore ``keys`` of ``group`` (default: the configured consumer group) now, heads first."""
    job = listener_job(settings, engine, registry or load_handlers(app), async_engine=async_engine)
    return job.process_keys(group or settings.consumer.group_id, keys)


def listener_run_once(
    settings: KafkaguardSettings,
    engine: Engine,
    *,
    app: str | None = None,
    registry: HandlerRegistry | None = None,
    group: str | None = None,
    async_engine: AsyncEngine | None = None,
) -> RunReport:
    """Restore every key of ``group`` (default: the configured consumer group) whose head is due."""
    job = listener_job(settings, engine, registry or load_handlers(app), async_engine=async_engine)
    return job.run_once(group or settings.consumer.group_id)
