"""``outbox`` mode: add events to the outbox inside the caller's own transaction.

Guarantee: the event row commits or rolls back with the caller's business writes, so a
rolled-back transaction publishes nothing (no phantom) and a committed one is never lost; the
relay publishes it later in per-key commit order. Nothing here talks to Kafka.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.tables import outbox
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError, Event, too_deep

# A NUL escape in JSON text that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def check_storable(event: Event) -> None:
    """Raise :class:`EnvelopeError` if ``event`` cannot be stored in the outbox as it is.

    PostgreSQL's ``jsonb`` refuses a NUL character and an unpaired surrogate in a string, and
    consumers refuse a payload nested deeper than :data:`~kafkaguard.envelope.DEFAULT_MAX_PAYLOAD_DEPTH`.
    Checked when the event is added, so the caller gets a clear error at once (an HTTP layer
    answers 400) instead of a database error at commit.
    """
    try:
        text = json.dumps([event.payload, dict(event.headers)], ensure_ascii=False, default=str)
    except RecursionError as exc:
        raise EnvelopeError(f"event {event.type!r}: payload nests too deeply to encode") from exc
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"event {event.type!r}: payload is not JSON-serialisable ({exc})") from exc
    if _NUL_ESCAPE.search(text):
        raise EnvelopeError(
            f"event {event.type!r} (key {event.key[:80]!r}): a payload or header string contains a NUL character,"
            " which PostgreSQL cannot store; remove it or encode the value (e.g. base64)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EnvelopeError(
            f"event {event.type!r} (key {event.key[:80]!r}): a payload string holds an unpaired surrogate"
            " (not valid Unicode text)"
        ) from exc
    if too_deep(text, DEFAULT_MAX_PAYLOAD_DEPTH + 1):  # +1: the list wrapped around the payload above
        raise EnvelopeError(
            f"event {event.type!r}: payload nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels; consumers refuse it"
        )


def outbox_row(event: Event, *, topic: str | None = None) -> dict[str, Any]:
    """The outbox row of ``event`` (Debezium's columns: id = event_id, aggregateid = key); raise
    :class:`EnvelopeError` when the event cannot be stored (:func:`check_storable`)."""
    check_storable(event)
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
