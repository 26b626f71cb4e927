"""The event loop behind the sync restore functions when handlers are ``async def``.

:func:`kafkaguard.consumer.restore.restore_key` is sync (the CLI, a CronJob, a worker thread). With
async handlers it runs the async form to the end here: on a caller's ``async_engine`` in an event
loop this module keeps per thread (an async engine's connections belong to the loop that opened
them; :func:`async_engine_for` closes it), or on a pool-less twin of the sync engine in a loop of
its own, closed after the call. Inside a running event loop it refuses: the caller awaits the
``_async`` form instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db.engine import async_twin
from kafkaguard.errors import ConfigurationError

_T = TypeVar("_T")
_local = threading.local()


def _loop() -> asyncio.Runner:
    """This thread's event loop for a caller's ``async_engine`` (kept until :func:`async_engine_for`
    ends): the connections of an async engine belong to the loop that opened them."""
    runner: asyncio.Runner | None = getattr(_local, "runner", None)
    if runner is None:
        runner = _local.runner = asyncio.Runner()
    return runner


def _close_loop() -> None:
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
        return _loop().run(_awaited(work(async_engine)))
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


@contextmanager
def async_engine_for(engine: Engine, registry: HandlerRegistry | None) -> Iterator[AsyncEngine | None]:
    """For a command that restores many keys with the sync functions: an async engine on ``engine``'s
    database and schema when ``registry`` holds async handlers (None otherwise), to pass as their
    ``async_engine``; it runs in one event loop of this thread, closed with it at the end."""
    if registry is None or not registry.has_async:
        yield None
        return
    twin = async_twin(engine, pool_size=1)
    try:
        yield twin
    finally:
        try:
            _loop().run(twin.dispose())
        finally:
            _close_loop()
