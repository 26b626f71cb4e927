"""Outbox rows as the relay reads them, and their form on Kafka (pure: no I/O).

The Kafka form of a relayed row is the one :class:`~kafkaguard.envelope.Event` gives in the other
publish modes: key = ``aggregateid``, value = the ``payload`` JSON, headers ``event_id`` (= the
row's ``id``), ``type``, ``aggregate_type``, ``occurred_at``, ``schema_version``, plus the row's
``headers`` JSON (built by the same :func:`kafkaguard.envelope.kafka_headers`). A row written by
Debezium-style SQL (only the five Debezium columns) gets the defaults of the other columns and is
relayed the same way.

The claim reads ``payload`` as the JSON text PostgreSQL renders for the ``jsonb`` value and the
relay sends that text as it is (as Debezium does): decoding a payload only to encode it again was
a sixth of the relay's CPU time. :func:`to_message` applies :class:`Event`'s checks to the row, so
a row that is not an event is rejected (and dead-lettered) in the same cases as before.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafkaguard.envelope import EnvelopeError, Event, KafkaHeaders, kafka_headers

# The columns of :class:`OutboxRow`, in its order, as the claim selects them (table alias ``o``).
# Empty headers (the default) come back as NULL: nothing to parse for most rows.
CLAIM_COLUMNS = (
    "o.id::text, o.seq, o.aggregatetype, o.aggregateid, o.type, o.payload::text, NULLIF(o.headers, '{}'::jsonb),"
    " o.occurred_at, o.schema_version, o.topic"
)


@dataclass(frozen=True)
class OutboxRow:
    """One claimed outbox row (the columns of :data:`CLAIM_COLUMNS`, in that order)."""

    id: str  # the uuid as text: it goes into a header and the settle statement, never needed as a UUID
    seq: int
    aggregatetype: str
    aggregateid: str
    type: str
    payload_json: str  # the jsonb payload as PostgreSQL renders it
    headers: Any
    occurred_at: datetime
    schema_version: int
    topic: str | None


@dataclass(frozen=True)
class Message:
    """A row's Kafka message: value, key and headers."""

    value: bytes
    key: bytes
    headers: KafkaHeaders


def _aggregate_type(row: OutboxRow) -> str:
    # Event's default: 'post.created' -> 'post' when the row has no aggregate type.
    return row.aggregatetype or row.type.split(".", 1)[0]


def _extra_headers(row: OutboxRow) -> dict[str, str]:
    headers = row.headers
    if headers is None:  # the claim returns empty headers as NULL
        return {}
    if not isinstance(headers, dict):
        raise EnvelopeError(f"outbox row {row.id}: headers must be a JSON object, not {type(headers).__name__}")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()}


def to_message(row: OutboxRow) -> Message:
    """The Kafka message of ``row``; raise EnvelopeError where :class:`Event` would refuse the row."""
    if not row.type:
        raise EnvelopeError(f"outbox row {row.id}: an event needs a non-empty type")
    if not row.aggregateid:
        raise EnvelopeError(f"outbox row {row.id} ({row.type!r}) needs a non-empty aggregateid (its key)")
    # jsonb renders an object, and only an object, with a leading '{'.
    if not row.payload_json.startswith("{"):
        kind = type(json.loads(row.payload_json)).__name__
        raise EnvelopeError(f"outbox row {row.id} ({row.type!r}): payload must be a JSON object, not {kind}")
    headers = kafka_headers(
        row.id, row.type, _aggregate_type(row), row.occurred_at, row.schema_version, _extra_headers(row)
    )
    return Message(row.payload_json.encode(), row.aggregateid.encode(), headers)


def to_event(row: OutboxRow) -> Event:
    """The event of ``row`` (payload decoded); raise EnvelopeError if the row cannot be one."""
    return Event(
        type=row.type,
        key=row.aggregateid,
        payload=json.loads(row.payload_json),
        aggregate_type=row.aggregatetype,
        event_id=uuid.UUID(row.id),
        occurred_at=row.occurred_at,
        schema_version=row.schema_version,
        headers=_extra_headers(row),
    )


def topic_of(row: OutboxRow, for_aggregate: Callable[[str], str]) -> str:
    """``row.topic`` when set, else the aggregate type's topic (``outbox.event.<aggregatetype>``)."""
    return row.topic or for_aggregate(row.aggregatetype)


def fallback_event(row: OutboxRow) -> Event:
    """An event that stands for a row :func:`to_event` rejects, so its dead letter can be stored."""
    payload = json.loads(row.payload_json)
    return Event(
        type=row.type or "unknown",
        key=row.aggregateid or "unknown",
        payload=payload if isinstance(payload, dict) else {"value": payload},
        aggregate_type=row.aggregatetype or "unknown",
        event_id=uuid.UUID(row.id),
        occurred_at=row.occurred_at,
        schema_version=row.schema_version,
    )
