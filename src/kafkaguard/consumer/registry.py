"""Handlers by event type, and the context a handler receives.

A handler is ``def handle(event, ctx) -> None`` (or ``async def``). ``ctx.session`` is the session
of the transaction that also writes the inbox row, so the handler's writes and the inbox row
commit together (exactly-once effect); ``ctx.emit(event)`` adds an event to this service's own
outbox in that same transaction. A handler must not commit or roll back the session itself.

A *batch handler* is ``def handle_many(events, ctx) -> None`` (or ``async def``), registered with
:meth:`HandlerRegistry.register_batch` or ``@registry.batch_handler(type)``: it gets a list of
events of its type in offset order and a :class:`BatchContext` (``ctx.positions[i]`` is where
``events[i]`` was read), so it can write them with one statement (``session.execute(insert(t),
rows)``). In batch mode (``ConsumerSettings.batch_size > 1``) it is called once per run of
consecutive new (non-duplicate) events of its type within a chunk; in single mode, in the per-event
fallback of a chunk, by the restore job and by the HTTP endpoint it is called with a one-element
list. The guarantees are those of a per-event handler everywhere: the events' inbox rows commit in
the same transaction, their keys are locked, a blocked key parks its events, and a failure is
retried and dead-lettered per event. It must apply every event it is given (skipping one would
still mark it done in the inbox).

Registration options:

- ``inbox`` (default ``True``): write a ``kafka_inbox`` row ``(consumer_group, event_id)`` and skip
  events whose row exists. ``inbox=False`` is the dailyfeed shape: the handler is idempotent by
  itself (e.g. an upsert keyed by ``event.event_id``), no inbox row is written, and a redelivered
  event runs the handler again — which must then change nothing.
- ``model`` (a pydantic v2 model class): a *typed handler*. The payload is validated with
  ``model.model_validate(event.payload)`` and the handler gets the model instance instead of the
  event — ``def handle(payload: M, ctx)`` (``ctx.event`` is the envelope: id, key, headers); a
  typed batch handler gets ``list[M]`` and ``ctx.events``. A payload the model refuses raises
  :class:`~kafkaguard.errors.PayloadValidationError` before the handler runs: permanent, so the
  message is dead-lettered at once (reason ``invalid_payload``, raw bytes kept, the validation
  errors in ``error_message``), never retried in process; the HTTP endpoint answers 422. Restoring
  it (after the model or the producer is fixed) validates again.
- ``retry`` (a :class:`~kafkaguard.policies.retry.RetryPolicy`): the in-process retries of this
  handler's failures, instead of the group's ``ConsumerSettings.retry``. Which errors are retriable
  is still the group's classifier's decision; the restore jobs keep their own policy
  (``RestoreSettings.policy``).

The registry is filled at import time and read afterwards; it is not meant to be mutated while a
worker runs (no locking).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError, PayloadValidationError
from kafkaguard.logtext import short
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.stores.outbox import add_event, add_event_async

S = TypeVar("S", Session, AsyncSession)


class _Emits(Generic[S]):
    """``emit``/``emit_async`` of both context shapes (they hold ``session`` and ``emitted``)."""

    session: S
    emitted: list[Event]

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

    @property
    def connection(self) -> Any:
        """The driver's own connection of the handler's transaction (psycopg's ``Connection`` on
        PostgreSQL, PyMySQL's on MariaDB), for handlers whose statements are hot: what its cursors
        execute commits or rolls back with the event, inbox row and dead letters alike, without
        SQLAlchemy's per-statement work (about 100 µs a statement through ``session``). Sync handlers
        on a SQL store only; do not commit, roll back or close it: kafkaguard does."""
        if not isinstance(self.session, Session):
            raise ConfigurationError(
                "ctx.connection is the driver connection of a sync handler's SQL transaction; "
                "async handlers and document stores use ctx.session"
            )
        return self.session.connection().connection.driver_connection


@dataclass
class HandlerContext(_Emits[S]):
    """What a handler gets besides the event: the transaction's session and delivery metadata.

    ``topic``/``partition``/``offset`` are ``None`` when the event did not come from Kafka (HTTP
    receiving endpoint, restore of a dead letter created by HTTP). ``event`` is the envelope
    (a typed handler, ``model=``, gets the payload model as its first argument and the id, key,
    time and headers here).
    """

    session: S
    consumer_group: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    attempt: int = 1
    emitted: list[Event] = field(default_factory=list)
    event: Event = field(kw_only=True)


@dataclass(frozen=True)
class Position:
    """Where an event was read: ``topic[partition]@offset``."""

    topic: str
    partition: int
    offset: int


@dataclass
class BatchContext(_Emits[S]):
    """What a batch handler gets besides its events: the session and each event's position.

    ``positions[i]`` belongs to ``events[i]``; it is ``None`` for an event that did not come from
    Kafka (HTTP receiving endpoint). ``attempt`` counts the attempts of a one-event call (retries,
    restore); a multi-event call is always the first attempt.
    """

    session: S
    consumer_group: str
    positions: list[Position | None] = field(default_factory=list)
    attempt: int = 1
    emitted: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    """The envelopes, set for typed batch handlers (``model=``), which get the payload models."""


SyncHandler = Callable[[Event, HandlerContext[Session]], None]
AsyncHandler = Callable[[Event, HandlerContext[AsyncSession]], Awaitable[None]]
SyncBatchHandler = Callable[[list[Event], BatchContext[Session]], None]
AsyncBatchHandler = Callable[[list[Event], BatchContext[AsyncSession]], Awaitable[None]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Registration:
    """One registered handler and how it is applied."""

    event_type: str
    func: Callable[..., Any]
    is_async: bool
    inbox: bool = True
    batch: bool = False
    """``func`` takes ``(events, BatchContext)`` instead of ``(event, HandlerContext)``."""
    model: type[BaseModel] | None = None
    """Typed handler: ``func`` validates the payload and calls the user's handler with the model."""
    retry: RetryPolicy | None = None
    """This handler's in-process retry policy; ``None``: the group's (``ConsumerSettings.retry``)."""


def validated(model: type[BaseModel], event: Event) -> BaseModel:
    """``event``'s payload as ``model``; raise :class:`PayloadValidationError` (one line) if it is not one."""
    try:
        return model.model_validate(event.payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}" for err in exc.errors()[:10]
        )
        raise PayloadValidationError(
            f"payload of {short(event.type)} event {event.event_id} is not a valid {model.__name__}: "
            f"{exc.error_count()} error(s): {short(problems, 1000)}"
        ) from None  # the message says it all; pydantic's traceback would only repeat it


def typed(func: Callable[..., Any], model: type[BaseModel], *, batch: bool) -> Callable[..., Any]:
    """``func`` (which takes models) as a handler taking events: validates first, keeps sync/async."""
    if batch:

        def convert_many(events: list[Event], ctx: Any) -> tuple[list[BaseModel], Any]:
            models = [validated(model, e) for e in events]
            ctx.events = list(events)
            return models, ctx

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def many_async(events: list[Event], ctx: Any) -> Any:
                return await func(*convert_many(events, ctx))

            return many_async

        @functools.wraps(func)
        def many(events: list[Event], ctx: Any) -> Any:
            return func(*convert_many(events, ctx))

        return many

    def convert(event: Event, ctx: Any) -> tuple[BaseModel, Any]:
        return validated(model, event), ctx  # ctx.event is the envelope already

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def one_async(event: Event, ctx: Any) -> Any:
            return await func(*convert(event, ctx))

        return one_async

    @functools.wraps(func)
    def one(event: Event, ctx: Any) -> Any:
        return func(*convert(event, ctx))

    return one


class HandlerRegistry:
    """Maps event types to handlers.

    ``ignore_unknown`` (default ``False``): an event whose type has no handler is dead-lettered with
    reason ``unknown_type``; with ``True`` it is acknowledged and counted as ignored instead (for
    groups that read a topic but care about some of its types only).
    """

    def __init__(self, *, ignore_unknown: bool = False) -> None:
        self.ignore_unknown = ignore_unknown
        self._by_type: dict[str, Registration] = {}

    def register(
        self,
        event_type: str,
        func: Callable[..., Any],
        *,
        inbox: bool = True,
        model: type[BaseModel] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Register ``func(event, ctx)`` (sync or async) for ``event_type``; one handler per type.

        ``model``: a typed handler, ``func(payload_model, ctx)``; ``retry``: this handler's in-process
        retry policy (see the module docstring for both).
        """
        self._add(event_type, func, inbox=inbox, model=model, retry=retry, batch=False)

    def register_batch(
        self,
        event_type: str,
        func: Callable[..., Any],
        *,
        inbox: bool = True,
        model: type[BaseModel] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Register ``func(events, ctx)`` (sync or async) for ``event_type`` as a batch handler.

        See the module docstring for how it is called; options as for :meth:`register`.
        """
        self._add(event_type, func, inbox=inbox, model=model, retry=retry, batch=True)

    def _add(
        self,
        event_type: str,
        func: Callable[..., Any],
        *,
        inbox: bool,
        model: type[BaseModel] | None,
        retry: RetryPolicy | None,
        batch: bool,
    ) -> None:
        if event_type in self._by_type:
            raise ConfigurationError(f"a handler for {event_type!r} is already registered")
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigurationError(f"model= of {event_type!r} must be a pydantic model class, not {model!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry= of {event_type!r} must be a kafkaguard RetryPolicy, not {retry!r}")
        is_async = inspect.iscoroutinefunction(func)
        wrapped = typed(func, model, batch=batch) if model is not None else func
        self._by_type[event_type] = Registration(event_type, wrapped, is_async, inbox, batch, model, retry)

    def handler(
        self,
        event_type: str,
        *,
        inbox: bool = True,
        model: type[BaseModel] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register` (returns the function unchanged)."""

        def deco(func: F) -> F:
            self.register(event_type, func, inbox=inbox, model=model, retry=retry)
            return func

        return deco

    def batch_handler(
        self,
        event_type: str,
        *,
        inbox: bool = True,
        model: type[BaseModel] | None = None,
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register_batch` (returns the function unchanged)."""

        def deco(func: F) -> F:
            self.register_batch(event_type, func, inbox=inbox, model=model, retry=retry)
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


def load_registry(spec: str | None, *, option: str = "--app") -> HandlerRegistry:
    """Import ``module:attribute`` and return the HandlerRegistry it names (or its ``.registry``).

    The module is looked up in the working folder first, then on the path.
    Raises :class:`ConfigurationError` when ``spec`` is missing or malformed, the module cannot be
    imported (or fails while importing), or the attribute is not a registry.
    """
    if not spec:
        raise ConfigurationError(f"pass {option} module:registry (the consumer's handlers)")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"expected module:attribute for {option}, got {spec!r} (e.g. myapp.handlers:registry)")
    # The `kafkaguard` script's path starts at its own folder, not the working one: put the working
    # folder first, as `python -m kafkaguard` has it (and uvicorn and gunicorn do for their targets),
    # so `kafkaguard consume myapp.handlers:registry` finds `myapp` where the user stands.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} ({option} {spec}): {exc}; check PYTHONPATH") from exc
    except Exception as exc:  # the user's module raised while importing: say which and what
        raise ConfigurationError(
            f"importing {module_name!r} ({option} {spec}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = getattr(module, attr, None)
    if obj is None:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r} ({option} {spec})")
    if not isinstance(obj, HandlerRegistry):
        obj = getattr(obj, "registry", obj)
    if not isinstance(obj, HandlerRegistry):
        raise ConfigurationError(
            f"{spec!r} is a {type(obj).__name__}, not a kafkaguard HandlerRegistry (nor has a .registry)"
        )
    return obj
