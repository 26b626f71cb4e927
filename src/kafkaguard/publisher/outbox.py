"""``outbox`` mode: add events to the outbox inside the caller's own transaction.

Guarantee: the event row commits or rolls back with the caller's business writes, so a
rolled-back transaction publishes nothing (no phantom) and a committed one is never lost; the
relay publishes it later in per-key commit order. Nothing here talks to Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.tables import outbox
from kafkaguard.envelope import Event


def outbox_row(event: Event, *, topic: str | None = None) -> dict[str, Any]:
    """The outbox row of ``event`` (Debezium's columns: id = event_id, aggregateid = key)."""
    return {
        "id": event.event_id,
        "aggregatetype": event.aggregate_type,
        "aggregateid": event.key,
        "type": event.type,
        "payload": event.payload,
        "headers": dict(event.headers),
        "occurred_at": event.occurred_at,
        "schema_version": event.schema_version,
        "topic": topic,
    }


def add_events(
    session: Session | Connection,
    events: Iterable[Event],
    *,
    topic: str | None = None,
    delete_after_insert: bool = False,
) -> None:
    """Insert ``events`` into the outbox in the transaction of ``session`` (which the caller commits).

    Events are inserted in the order given, so events of one key keep that order.
    ``delete_after_insert`` is for Debezium as the relay: the rows are deleted again in the same
    transaction, so the table stays empty while the inserts still reach the WAL that Debezium
    reads (kafkaguard's own relay then never sees them: use it only with ``relay.kind=debezium``).
    """
    rows = [outbox_row(e, topic=topic) for e in events]
    if rows:
        session.execute(insert(outbox), rows)
        if delete_after_insert:
            session.execute(delete(outbox).where(outbox.c.id.in_([r["id"] for r in rows])))


def add_event(session: Session | Connection, event: Event, *, topic: str | None = None) -> None:
    """Insert one event into the outbox in the caller's transaction."""
    add_events(session, [event], topic=topic)


async def add_events_async(
    session: AsyncSession | AsyncConnection,
    events: Iterable[Event],
    *,
    topic: str | None = None,
    delete_after_insert: bool = False,
) -> None:
    """Asyncio form of :func:`add_events` (``AsyncSession`` or ``AsyncConnection``)."""
    rows = [outbox_row(e, topic=topic) for e in events]
    if rows:
        await session.execute(insert(outbox), rows)
        if delete_after_insert:
            await session.execute(delete(outbox).where(outbox.c.id.in_([r["id"] for r in rows])))


async def add_event_async(session: AsyncSession | AsyncConnection, event: Event, *, topic: str | None = None) -> None:
    """Asyncio form of :func:`add_event`."""
    await add_events_async(session, [event], topic=topic)
