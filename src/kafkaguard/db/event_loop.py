"""Run async database work to the end from sync code (the sync restore functions, async handlers).

An async engine's connections belong to the event loop that opened them: a caller's engine runs in
one loop kept per thread (:func:`close_thread_loop` ends it); without one, a pool-less async twin
of the sync engine runs in a loop of its own, both closed after the call. Inside a running event
loop it refuses: the caller awaits the ``_async`` form instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from kafkaguard.db.engine import async_twin
from kafkaguard.errors import ConfigurationError

_T = TypeVar("_T")
_local = threading.local()


def thread_loop() -> asyncio.Runner:
    """This thread's event loop for a caller's ``async_engine`` (kept until :func:`close_thread_loop`)."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = asyncio.Runner()
    return runner


def close_thread_loop() -> None:
    """Close this thread's kept event loop (if any)."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is not None:
        _local.runner = None
        runner.close()


def run_async(engine: Engine, async_engine: AsyncEngine | None, work: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    """Run ``work`` to the end: on ``async_engine`` in this thread's kept loop, or on a pool-less
    async twin of ``engine`` in a loop of its own (both closed after)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise ConfigurationError(
            "the registry has async handlers and an event loop is running in this thread: "
            "await restore_key_async / retry_dead_letter_async instead"
        )
    if async_engine is not None:
        return thread_loop().run(_awaited(work(async_engine)))
    twin = async_twin(engine, poolclass=NullPool)

    async def once() -> _T:
        try:
            return await work(twin)
        finally:
            await twin.dispose()

    with asyncio.Runner() as runner:
        return runner.run(once())


async def _awaited(value: Awaitable[_T]) -> _T:
    return await value
