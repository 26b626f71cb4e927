"""``outbox`` mode: add events to the outbox inside the caller's own transaction.

Guarantee: the event row commits or rolls back with the caller's business writes, so a
rolled-back transaction publishes nothing (no phantom) and a committed one is never lost; the
relay publishes it later in per-key commit order. Nothing here talks to Kafka. The SQL lives in
:mod:`kafkaguard.stores.outbox`.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_events, add_events_async, check_storable, outbox_row

__all__ = ["add_event", "add_event_async", "add_events", "add_events_async", "check_storable", "outbox_row"]


def add_event(session: Session | Connection, event: Event, *, topic: str | None = None) -> None:
    """Insert one event into the outbox in the caller's transaction."""
    add_events(session, [event], topic=topic)


async def add_event_async(session: AsyncSession | AsyncConnection, event: Event, *, topic: str | None = None) -> None:
    """Asyncio form of :func:`add_event`."""
    await add_events_async(session, [event], topic=topic)
