"""Outbox rows as the relay reads them, and their form on Kafka (pure: no I/O).

The Kafka form of a relayed row is the one :class:`~kafkaguard.envelope.Event` gives in the other
publish modes: key = ``aggregateid``, value = the ``payload`` JSON, headers ``event_id`` (= the
row's ``id``), ``type``, ``aggregate_type``, ``occurred_at``, ``schema_version``, plus the row's
``headers`` JSON (built by the same :func:`kafkaguard.envelope.kafka_headers`). A row written by
Debezium-style SQL (only the five Debezium columns) gets the defaults of the other columns and is
relayed the same way.

The relay never decodes a payload it only forwards. The claim reads ``payload`` as the JSON text
PostgreSQL renders for the ``jsonb`` value and the relay sends that text as it is (as Debezium
does): decoding a payload only to encode it again was a sixth of the relay's CPU time, and Python's
``json`` recurses (a valid ``jsonb`` array 5,000 levels deep raised ``RecursionError`` and killed the
relay on every restart). The JSON kind is read from the first character of PostgreSQL's rendering;
the nesting is bounded by :func:`kafkaguard.envelope.too_deep` (a character count, a scan only for
documents with more brackets than the limit). The extra ``headers`` are read as text too and decoded
here, only when present and only after the same depth check.

Totality: :func:`to_message` raises :class:`RowRejectedError` (an :class:`EnvelopeError`) for every
row that cannot be an event; its message starts with the reason (:class:`RejectReason`) and the
relay stores the row as a publisher dead letter. Columns the Python client could not even load
(``occurred_at`` outside Python's years 1-9999, e.g. ``'infinity'``) come back as NULL from the
claim and are rejected here instead of failing the claim for every row of the shard.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError, Event, KafkaHeaders, kafka_headers, too_deep
from kafkaguard.logtext import short
from kafkaguard.stores.outbox_rows import CLAIM_COLUMNS, OutboxRow

__all__ = [
    "CLAIM_COLUMNS",
    "Message",
    "OutboxRow",
    "RejectReason",
    "RowRejectedError",
    "to_event",
    "to_message",
    "topic_of",
]

# Envelope header names and the fixed-size values (event id, time, version): a bound, in bytes.
_ENVELOPE_HEADER_BYTES = 160


class RejectReason(StrEnum):
    """Why a row is not an event (the first word of its dead letter's error message)."""

    MISSING_TYPE = "missing_type"
    MISSING_KEY = "missing_key"
    NOT_AN_OBJECT = "not_an_object"
    TOO_DEEP = "too_deep"
    BAD_HEADERS = "bad_headers"
    BAD_OCCURRED_AT = "bad_occurred_at"
    UNEXPECTED = "unexpected"  # preparing the row raised something no rule foresaw (a bug): still one row


class RowRejectedError(EnvelopeError):
    """An outbox row cannot be an event; ``reason`` says why (it is dead-lettered, never retried)."""

    def __init__(self, reason: RejectReason, row_id: str, detail: str) -> None:
        super().__init__(f"{reason.value}: outbox row {row_id} {detail}")
        self.reason = reason


class Message(NamedTuple):
    """A row's Kafka message: value, key and headers, and its approximate size in bytes (a named
    tuple: one is built per relayed row)."""

    value: bytes
    key: bytes
    headers: KafkaHeaders
    size: int  # value + key + header bytes, headers estimated from their text (see :func:`to_message`)


_KINDS = {"[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}


def _json_kind(text: str) -> str:
    """The JSON kind of PostgreSQL's rendering of a jsonb value, from its first character."""
    return "object" if text[:1] == "{" else _KINDS.get(text[:1], "number")


def _extra_headers(row: OutboxRow, max_depth: int) -> dict[str, str]:
    text = row.headers_json
    if text is None:  # the claim returns empty headers as NULL
        return {}
    if text[:1] != "{":
        kind = _json_kind(text)
        raise RowRejectedError(RejectReason.BAD_HEADERS, row.id, f"headers must be a JSON object, not {kind}")
    if too_deep(text, max_depth):
        raise RowRejectedError(RejectReason.TOO_DEEP, row.id, f"headers nest deeper than {max_depth} levels")
    headers = json.loads(text)  # an object of bounded depth: cannot recurse too far
    return {str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()}


def to_message(row: OutboxRow, max_depth: int = DEFAULT_MAX_PAYLOAD_DEPTH) -> Message:
    """The Kafka message of ``row``; raise :class:`RowRejectedError` where :class:`Event` would refuse it.

    ``max_depth``: deepest nesting of arrays/objects allowed in the payload and the headers
    (``RelaySettings.max_payload_depth``). Never decodes the payload.
    """
    if not row.type:
        raise RowRejectedError(RejectReason.MISSING_TYPE, row.id, "has an empty type (an event needs one)")
    if not row.aggregateid:
        raise RowRejectedError(
            RejectReason.MISSING_KEY, row.id, f"({short(row.type)}) has an empty aggregateid (its Kafka key)"
        )
    payload = row.payload_json
    if payload[:1] != "{":  # jsonb renders an object, and only an object, with a leading '{'
        kind = _json_kind(payload)
        detail = f"({short(row.type)}): payload must be a JSON object, not {kind}"
        raise RowRejectedError(RejectReason.NOT_AN_OBJECT, row.id, detail)
    # The bracket count first (inline: this runs for every row); only a row with more brackets than
    # the limit is scanned by too_deep.
    if payload.count("[") + payload.count("{") > max_depth and too_deep(payload, max_depth):
        raise RowRejectedError(
            RejectReason.TOO_DEEP, row.id, f"({short(row.type)}): payload nests deeper than {max_depth} levels"
        )
    if row.occurred_at is None:
        raise RowRejectedError(RejectReason.BAD_OCCURRED_AT, row.id, "has an occurred_at outside the years 1-9999")
    aggregate_type = row.aggregatetype or row.type.split(".", 1)[0]  # Event's default: 'post.created' -> 'post'
    extra = None if row.headers_json is None else _extra_headers(row, max_depth)
    headers = kafka_headers(row.id, row.type, aggregate_type, row.occurred_at, row.schema_version, extra)
    value = payload.encode()
    key = row.aggregateid.encode()
    # Header bytes estimated from text lengths (exact for ASCII): a len() each, not a walk over the headers.
    size = len(value) + len(key) + len(row.type) + len(aggregate_type) + len(row.headers_json or "")
    return Message(value, key, headers, size + _ENVELOPE_HEADER_BYTES)


def to_event(row: OutboxRow) -> Event:
    """The event of ``row`` (payload decoded): for tests and tools, never on the relay's path."""
    if row.occurred_at is None:
        raise RowRejectedError(RejectReason.BAD_OCCURRED_AT, row.id, "has an occurred_at outside the years 1-9999")
    return Event(
        type=row.type,
        key=row.aggregateid,
        payload=json.loads(row.payload_json),
        aggregate_type=row.aggregatetype,
        event_id=uuid.UUID(row.id),
        occurred_at=row.occurred_at,
        schema_version=row.schema_version,
        headers=_extra_headers(row, DEFAULT_MAX_PAYLOAD_DEPTH),
    )


def topic_of(row: OutboxRow, for_aggregate: Callable[[str], str]) -> str:
    """``row.topic`` when set, else the aggregate type's topic (``outbox.event.<aggregatetype>``)."""
    return row.topic or for_aggregate(row.aggregatetype)
