"""The event loop behind the sync restore functions when handlers are ``async def``.

:func:`kafkaguard.db.event_loop.run_async` runs the async form to the end (on a caller's
``async_engine`` in a loop kept per thread, or on a pool-less twin of the sync engine);
:func:`async_engine_for` gives a command that restores many keys one async engine for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db.engine import async_twin
from kafkaguard.db.event_loop import close_thread_loop, run_async, thread_loop

__all__ = ["async_engine_for", "run_async"]


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
            thread_loop().run(twin.dispose())
        finally:
            close_thread_loop()
