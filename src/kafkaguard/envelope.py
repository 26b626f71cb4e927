"""The event envelope of DESIGN.md and its form on Kafka.

On Kafka an event is: message key = ``key`` (UTF-8), value = ``payload`` as UTF-8 JSON (compact
when Python encodes it; the outbox relay, like Debezium, sends the JSON text PostgreSQL renders for
the ``jsonb`` column, so it never decodes and re-encodes a payload), headers ``event_id``, ``type``,
``aggregate_type``, ``occurred_at`` (ISO 8601), ``schema_version`` and any extra headers such as W3C
``traceparent``. A plain Kafka client, and Debezium's Outbox Event Router
configured by kafkaguard, produce and read exactly this.

:func:`decode` never raises anything but :class:`DecodeError`, whose ``reason`` says what is wrong
with the bytes, so a consumer can dead-letter bad input instead of crashing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kafkaguard import headers as H
from kafkaguard.errors import DecodeError as DecodeError
from kafkaguard.errors import DecodeReason as DecodeReason
from kafkaguard.errors import EnvelopeError as EnvelopeError
from kafkaguard.ids import uuid7

if TYPE_CHECKING:
    from pydantic import BaseModel

JsonObject = dict[str, Any]
KafkaHeaders = list[tuple[str, bytes]]

DEFAULT_MAX_PAYLOAD_BYTES = 1_000_000
DEFAULT_MAX_PAYLOAD_DEPTH = 100
"""Deepest nesting of arrays and objects a payload may have (Python's ``json`` recurses: a 4 KB
document of 2,000 levels raises ``RecursionError``). Deeper payloads are dead letters ``too_deep``."""
_ENVELOPE_HEADERS = frozenset(H.ENVELOPE_HEADERS)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One domain event.

    ``event_id`` is the dedupe identity (UUIDv7); ``key`` orders events (the aggregate id, Kafka's
    message key); ``aggregate_type`` routes to a topic; ``payload`` is a JSON object.

    ``payload`` may also be given as a pydantic v2 model instance: it is stored as
    ``model.model_dump(mode="json", by_alias=True)``, the JSON object a typed handler
    (``@registry.handler(type, model=M)``) validates back into ``M``. ``event.payload`` is always the dict.
    """

    type: str
    key: str
    payload: JsonObject
    aggregate_type: str = ""
    event_id: uuid.UUID = field(default_factory=uuid7)
    occurred_at: datetime = field(default_factory=_now)
    schema_version: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)

    if TYPE_CHECKING:  # the generated __init__, with a model accepted as payload (see the docstring)

        def __init__(
            self,
            type: str,
            key: str,
            payload: JsonObject | BaseModel,
            aggregate_type: str = "",
            event_id: uuid.UUID = ...,
            occurred_at: datetime = ...,
            schema_version: int = 1,
            headers: Mapping[str, str] = ...,
        ) -> None: ...

    def __post_init__(self) -> None:
        if not isinstance(self.payload, dict):
            from pydantic import BaseModel  # only here: a dict payload costs no pydantic import

            if isinstance(self.payload, BaseModel):
                object.__setattr__(self, "payload", self.payload.model_dump(mode="json", by_alias=True))
        if not self.type:
            raise EnvelopeError("an event needs a non-empty type, e.g. 'post.created'")
        if not self.key:
            raise EnvelopeError(f"event {self.type!r} needs a non-empty key (its aggregate id)")
        if "\x00" in self.key or "\x00" in self.type:
            raise EnvelopeError(f"event {self.type!r}: key and type must not contain a NUL character")
        if not isinstance(self.payload, dict):
            raise EnvelopeError(
                f"event {self.type!r}: payload must be a JSON object, not {type(self.payload).__name__}"
            )
        if not self.aggregate_type:
            # 'post.created' -> 'post': the aggregate type defaults to the type's first part.
            object.__setattr__(self, "aggregate_type", self.type.split(".", 1)[0])
        if self.occurred_at.tzinfo is None:
            raise EnvelopeError("occurred_at must be timezone-aware")

    def payload_bytes(self) -> bytes:
        """The payload as compact UTF-8 JSON (the Kafka value)."""
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False, default=str).encode()

    def kafka_headers(self) -> KafkaHeaders:
        """Envelope fields and extra headers as Kafka headers (extras never override envelope fields)."""
        return kafka_headers(
            str(self.event_id), self.type, self.aggregate_type, self.occurred_at, self.schema_version, self.headers
        )

    def to_json(self) -> JsonObject:
        """The whole envelope as a JSON object (``http`` mode's body, dead-letter records)."""
        return {
            "event_id": str(self.event_id),
            "key": self.key,
            "type": self.type,
            "aggregate_type": self.aggregate_type,
            "payload": self.payload,
            "headers": dict(self.headers),
            "occurred_at": self.occurred_at.isoformat(),
            "schema_version": self.schema_version,
        }

    @classmethod
    def from_json(cls, data: Any) -> Event:
        """Parse :meth:`to_json`'s form; raise :class:`DecodeError` (reason ``wrong_shape``) on bad input."""
        if not isinstance(data, dict):
            raise DecodeError(DecodeReason.WRONG_SHAPE, "the envelope must be a JSON object")
        try:
            hdrs = data.get("headers") or {}
            if not isinstance(hdrs, dict):
                raise TypeError("headers must be an object")
            return cls(
                type=str(data["type"]),
                key=str(data["key"]),
                payload=data["payload"],
                aggregate_type=str(data.get("aggregate_type") or ""),
                event_id=uuid.UUID(str(data["event_id"])),
                occurred_at=_parse_time(data.get("occurred_at")),
                schema_version=int(data.get("schema_version", 1)),
                headers={str(k): str(v) for k, v in hdrs.items()},
            )
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            raise DecodeError(DecodeReason.WRONG_SHAPE, f"envelope field problem: {exc}") from exc


def kafka_headers(
    event_id: str,
    type: str,
    aggregate_type: str,
    occurred_at: datetime,
    schema_version: int,
    extra: Mapping[str, str] | None = None,
) -> KafkaHeaders:
    """The Kafka headers of an event from its fields (one place, so every publish path agrees).

    Extra headers never override the envelope's own.
    """
    out = [
        (H.EVENT_ID, event_id.encode()),
        (H.TYPE, type.encode()),
        (H.AGGREGATE_TYPE, aggregate_type.encode()),
        (H.OCCURRED_AT, occurred_at.isoformat().encode()),
        (H.SCHEMA_VERSION, str(schema_version).encode()),
    ]
    if extra:
        out += [(k, v.encode()) for k, v in extra.items() if k not in H.ENVELOPE_HEADERS]
    return out


def too_deep(text: str | bytes, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays/objects deeper than ``limit`` (without decoding it).

    Cheap for ordinary documents: nesting cannot exceed the number of opening brackets, which
    ``count`` finds at C speed; only a document with more brackets than ``limit`` is scanned.
    """
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return False
        data = text.encode("utf-8", "surrogatepass")
    else:
        if text.count(b"[") + text.count(b"{") <= limit:
            return False
        data = text
    depth = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _parse_time(raw: Any) -> datetime:
    if raw is None or raw == "":
        return _now()
    parsed = datetime.fromisoformat(str(raw))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def decode(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    *,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    max_payload_depth: int = DEFAULT_MAX_PAYLOAD_DEPTH,
) -> Event:
    """Turn a Kafka message into an :class:`Event` or raise :class:`DecodeError` with a reason.

    ``event_id`` and ``type`` headers are required; ``aggregate_type``, ``occurred_at`` and
    ``schema_version`` default sensibly (messages from other producers may lack them).
    """
    hdrs: dict[str, str] = {}
    for name, raw in headers or []:
        if raw is None:
            continue
        try:
            hdrs[name] = raw.decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(DecodeReason.UNDECODABLE, f"header {name!r} is not UTF-8") from exc
    for required in (H.EVENT_ID, H.TYPE):
        if not hdrs.get(required):
            raise DecodeError(DecodeReason.MISSING_HEADER, f"header {required!r} is missing")
    if "\x00" in hdrs[H.TYPE]:
        raise DecodeError(DecodeReason.WRONG_SHAPE, "header 'type' contains a NUL byte")
    if key is None or key == b"":
        raise DecodeError(DecodeReason.MISSING_KEY, "the message has no key (the event's ordering key)")
    if value is None:
        raise DecodeError(DecodeReason.WRONG_SHAPE, "the message has no value (a tombstone is not an event)")
    if len(value) > max_payload_bytes:
        raise DecodeError(DecodeReason.OVERSIZED, f"payload of {len(value)} bytes exceeds {max_payload_bytes}")
    try:
        key_text = key.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(DecodeReason.INVALID_KEY, "the key is not UTF-8") from exc
    if "\x00" in key_text:
        raise DecodeError(DecodeReason.INVALID_KEY, "the key contains a NUL byte")
    try:
        text = value.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(DecodeReason.UNDECODABLE, "the value is not UTF-8") from exc
    if too_deep(value, max_payload_depth):
        raise DecodeError(DecodeReason.TOO_DEEP, f"payload nests deeper than {max_payload_depth} levels")
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DecodeError(DecodeReason.NOT_JSON, f"value is not JSON ({exc.msg} at {exc.pos})") from exc
    except RecursionError as exc:  # belt and braces: too_deep should have caught it
        raise DecodeError(DecodeReason.TOO_DEEP, "payload nests too deeply to decode") from exc
    except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit
        raise DecodeError(DecodeReason.NOT_JSON, f"value cannot be decoded as JSON ({str(exc)[:200]})") from exc
    if not isinstance(payload, dict):
        raise DecodeError(DecodeReason.WRONG_SHAPE, f"value is JSON {type(payload).__name__}, not an object")
    try:
        event_id = uuid.UUID(hdrs[H.EVENT_ID])
        occurred_at = _parse_time(hdrs.get(H.OCCURRED_AT))
        schema_version = int(hdrs.get(H.SCHEMA_VERSION, "1"))
        if not -(2**31) <= schema_version < 2**31:
            raise ValueError(f"schema_version {schema_version} is out of range")
    except ValueError as exc:
        raise DecodeError(DecodeReason.WRONG_SHAPE, f"bad envelope header: {exc}") from exc
    type_ = hdrs[H.TYPE]
    # Every check of Event.__post_init__ was made above (type and key non-empty and without NUL,
    # payload a dict, occurred_at aware); only the aggregate type's default is left. Building the
    # frozen dataclass without its __init__ saves a third of decode's own time per message.
    event: Event = object.__new__(Event)
    event.__dict__.update(
        type=type_,
        key=key_text,
        payload=payload,
        aggregate_type=hdrs.get(H.AGGREGATE_TYPE) or type_.split(".", 1)[0],
        event_id=event_id,
        occurred_at=occurred_at,
        schema_version=schema_version,
        headers={k: v for k, v in hdrs.items() if k not in _ENVELOPE_HEADERS},
    )
    return event
