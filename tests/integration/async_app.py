"""An ``async def`` handler registry for the async restore tests (imported by the CLI subprocesses too).

``test.applied`` is async (an ``AsyncSession``): one ``effects`` row per application, raising for a
key in ``broken_keys``, like :mod:`tests.integration.consumer_app`'s sync handler. ``test.other``
is a sync handler in the same registry, so one key can mix both.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.consumer import HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event
from tests.integration.consumer_app import BrokenKeyError

registry = HandlerRegistry()

_BROKEN = text("SELECT 1 FROM broken_keys WHERE key = :k")
_EFFECT = text("INSERT INTO effects (event_id, key, seq) VALUES (:e, :k, :s)")


@registry.handler("test.applied")
async def apply_effect(event: Event, ctx: HandlerContext[AsyncSession]) -> None:
    assert isinstance(ctx.session, AsyncSession)
    if (await ctx.session.execute(_BROKEN, {"k": event.key})).first():
        raise BrokenKeyError(f"key {event.key} is broken")
    await ctx.session.execute(_EFFECT, {"e": event.event_id, "k": event.key, "s": int(event.payload["seq"])})


@registry.handler("test.other")
def apply_other(event: Event, ctx: HandlerContext[Session]) -> None:
    assert isinstance(ctx.session, Session)
    if ctx.session.execute(_BROKEN, {"k": event.key}).first():
        raise BrokenKeyError(f"key {event.key} is broken")
    ctx.session.execute(_EFFECT, {"e": event.event_id, "k": event.key, "s": int(event.payload["seq"])})
