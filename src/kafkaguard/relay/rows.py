"""Outbox rows as the relay reads them, and their form as events (pure: no I/O).

The Kafka form of a relayed row is built by :class:`~kafkaguard.envelope.Event`, exactly as in the
other publish modes: key = ``aggregateid``, value = ``payload`` JSON, headers ``event_id`` (= the
row's ``id``), ``type``, ``aggregate_type``, ``occurred_at``, ``schema_version``, plus the row's
``headers`` JSON. A row written by Debezium-style SQL (only the five Debezium columns) gets the
defaults of the other columns and is relayed the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafkaguard.envelope import EnvelopeError, Event

COLUMNS = "id, seq, aggregatetype, aggregateid, type, payload, headers, occurred_at, schema_version, topic"


@dataclass(frozen=True)
class OutboxRow:
    """One claimed outbox row (the columns of :data:`COLUMNS`, in that order)."""

    id: uuid.UUID
    seq: int
    aggregatetype: str
    aggregateid: str
    type: str
    payload: Any
    headers: Any
    occurred_at: datetime
    schema_version: int
    topic: str | None


def to_event(row: OutboxRow) -> Event:
    """The event of ``row``; raise EnvelopeError if the row cannot be one (e.g. payload not an object)."""
    headers = row.headers if row.headers is not None else {}
    if not isinstance(headers, dict):
        raise EnvelopeError(f"outbox row {row.id}: headers must be a JSON object, not {type(headers).__name__}")
    return Event(
        type=row.type,
        key=row.aggregateid,
        payload=row.payload,
        aggregate_type=row.aggregatetype,
        event_id=row.id,
        occurred_at=row.occurred_at,
        schema_version=row.schema_version,
        headers={str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()},
    )


def topic_of(row: OutboxRow, for_aggregate: Callable[[str], str]) -> str:
    """``row.topic`` when set, else the aggregate type's topic (``outbox.event.<aggregatetype>``)."""
    return row.topic or for_aggregate(row.aggregatetype)


def fallback_event(row: OutboxRow) -> Event:
    """An event that stands for a row :func:`to_event` rejects, so its dead letter can be stored."""
    payload = row.payload if isinstance(row.payload, dict) else {"value": row.payload}
    return Event(
        type=row.type or "unknown",
        key=row.aggregateid or "unknown",
        payload=payload,
        aggregate_type=row.aggregatetype or "unknown",
        event_id=row.id,
        occurred_at=row.occurred_at,
        schema_version=row.schema_version,
    )
