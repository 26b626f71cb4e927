"""Restore listener dead letters by key or by id (``kafkaguard.restore_key`` and friends): the public functions over
:class:`kafkaguard.restore.listener_job.ListenerRestoreJob` on PostgreSQL.

The guarantees (key lock shared with the consumer, arrival order, savepoints, the first failure
stops the key, async handlers in one async transaction) are the job's; these wrappers only build
the PostgreSQL store. :func:`restore_key_async` / :func:`retry_dead_letter_async` are the forms for
code that runs in an event loop.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.listener_job import ListenerRestoreJob, RestoreResult
from kafkaguard.stores.by_database import consumer_store_for
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.listener_dead_letters import SqlListenerDeadLetters

__all__ = [
    "RestoreResult",
    "due_keys",
    "restore_key",
    "restore_key_async",
    "retry_dead_letter",
    "retry_dead_letter_async",
]


def _job(
    store: ConsumerStore,
    registry: HandlerRegistry,
    restored_by: str,
    policy: RetryPolicy | None,
    consumer_settings: ConsumerSettings | None,
) -> ListenerRestoreJob:
    return ListenerRestoreJob(store, registry, consumer_settings, policy=policy, restored_by=restored_by)


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
    store = consumer_store_for(engine, async_engine)
    return _job(store, registry, restored_by, policy, consumer_settings).process_key(group, key)


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
    store = consumer_store_for(async_engine.sync_engine, async_engine)
    return await _job(store, registry, restored_by, policy, consumer_settings).process_key_async(group, key)


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
    store = consumer_store_for(engine, async_engine)
    return _job(store, registry, restored_by, policy, consumer_settings).process_record(dead_letter_id)


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
    store = consumer_store_for(async_engine.sync_engine, async_engine)
    return await _job(store, registry, restored_by, policy, consumer_settings).process_record_async(dead_letter_id)


def due_keys(engine: Engine, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
    """``(group, key)`` pairs whose oldest open dead letter is ``pending`` and due now, oldest head first.

    ``group``: only that consumer group's keys — filtered before the ``LIMIT``, so one group's
    backlog never hides another group's due keys.
    """
    return SqlListenerDeadLetters(engine).due_keys(limit=limit, group=group)
