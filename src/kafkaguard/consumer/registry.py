"""Handlers by event type, and the context a handler receives.

A handler is ``def handle(event, ctx) -> None`` (or ``async def``). ``ctx.session`` is the session
of the transaction that also writes the inbox row, so the handler's writes and the inbox row
commit together (exactly-once effect); ``ctx.emit(event)`` adds an event to this service's own
outbox in that same transaction. A handler must not commit or roll back the session itself.

Registration options:

- ``inbox`` (default ``True``): write a ``kafka_inbox`` row ``(consumer_group, event_id)`` and skip
  events whose row exists. ``inbox=False`` is the dailyfeed shape: the handler is idempotent by
  itself (e.g. an upsert keyed by ``event.event_id``), no inbox row is written, and a redelivered
  event runs the handler again — which must then change nothing.

The registry is filled at import time and read afterwards; it is not meant to be mutated while a
worker runs (no locking).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from kafkaguard.publisher.outbox import add_event, add_event_async

S = TypeVar("S", Session, AsyncSession)


@dataclass
class HandlerContext(Generic[S]):
    """What a handler gets besides the event: the transaction's session and delivery metadata.

    ``topic``/``partition``/``offset`` are ``None`` when the event did not come from Kafka (HTTP
    receiving endpoint, restore of a dead letter created by HTTP).
    """

    session: S
    consumer_group: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    attempt: int = 1
    emitted: list[Event] = field(default_factory=list)

    def emit(self, event: Event, *, topic: str | None = None) -> None:
        """Add ``event`` to this service's outbox in the handler's transaction (sync sessions)."""
        if not isinstance(self.session, Session):
            raise ConfigurationError("async handlers emit with `await ctx.emit_async(event)`")
        add_event(self.session, event, topic=topic)
        self.emitted.append(event)

    async def emit_async(self, event: Event, *, topic: str | None = None) -> None:
        """Add ``event`` to this service's outbox in the handler's transaction (async sessions)."""
        if not isinstance(self.session, AsyncSession):
            raise ConfigurationError("sync handlers emit with `ctx.emit(event)`")
        await add_event_async(self.session, event, topic=topic)
        self.emitted.append(event)


SyncHandler = Callable[[Event, HandlerContext[Session]], None]
AsyncHandler = Callable[[Event, HandlerContext[AsyncSession]], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Registration:
    """One registered handler and how it is applied."""

    event_type: str
    func: Callable[..., Any]
    is_async: bool
    inbox: bool = True


class HandlerRegistry:
    """Maps event types to handlers.

    ``ignore_unknown`` (default ``False``): an event whose type has no handler is dead-lettered with
    reason ``unknown_type``; with ``True`` it is acknowledged and counted as ignored instead (for
    groups that read a topic but care about some of its types only).
    """

    def __init__(self, *, ignore_unknown: bool = False) -> None:
        self.ignore_unknown = ignore_unknown
        self._by_type: dict[str, Registration] = {}

    def register(self, event_type: str, func: Callable[..., Any], *, inbox: bool = True) -> None:
        """Register ``func`` (sync or async) for ``event_type``; one handler per type."""
        if event_type in self._by_type:
            raise ConfigurationError(f"a handler for {event_type!r} is already registered")
        self._by_type[event_type] = Registration(event_type, func, inspect.iscoroutinefunction(func), inbox)

    def handler(self, event_type: str, *, inbox: bool = True) -> Callable[[F], F]:
        """Decorator form of :meth:`register`."""

        def deco(func: F) -> F:
            self.register(event_type, func, inbox=inbox)
            return func

        return deco

    def get(self, event_type: str) -> Registration | None:
        """The registration of ``event_type``, or ``None``."""
        return self._by_type.get(event_type)

    @property
    def types(self) -> tuple[str, ...]:
        """Registered event types, sorted."""
        return tuple(sorted(self._by_type))

    @property
    def has_async(self) -> bool:
        """Whether any handler is ``async def`` (the worker then needs an async engine)."""
        return any(r.is_async for r in self._by_type.values())
