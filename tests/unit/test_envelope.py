"""The envelope's Kafka form round-trips, and bad bytes become DecodeError with the right reason."""

import json
import uuid
from datetime import UTC, datetime

import pytest

from kafkaguard import headers as H
from kafkaguard.envelope import DecodeError, DecodeReason, EnvelopeError, Event, decode


def make() -> Event:
    return Event(
        type="post.created", key="post-7", payload={"title": "héllo", "n": 1}, headers={"traceparent": "00-ab"}
    )


def test_aggregate_type_defaults_to_the_type_prefix() -> None:
    assert make().aggregate_type == "post"
    assert Event(type="x", key="k", payload={}, aggregate_type="order").aggregate_type == "order"


def test_kafka_form_round_trips() -> None:
    event = make()
    back = decode(event.key.encode(), event.payload_bytes(), event.kafka_headers())
    assert back == event
    assert dict(event.kafka_headers())[H.EVENT_ID] == str(event.event_id).encode()


def test_json_form_round_trips() -> None:
    event = make()
    assert Event.from_json(json.loads(json.dumps(event.to_json()))) == event


def test_extra_headers_never_override_envelope_fields() -> None:
    event = Event(type="a.b", key="k", payload={}, headers={H.EVENT_ID: "forged"})
    assert dict(event.kafka_headers())[H.EVENT_ID] == str(event.event_id).encode()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "", "key": "k", "payload": {}}, "non-empty type"),
        ({"type": "a", "key": "", "payload": {}}, "non-empty key"),
        ({"type": "a", "key": "k", "payload": [1]}, "JSON object"),
        ({"type": "a", "key": "k", "payload": {}, "occurred_at": datetime(2020, 1, 1)}, "timezone-aware"),
    ],
)
def test_invalid_events_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        Event(**kwargs)  # type: ignore[arg-type]


GOOD_HEADERS = [(H.EVENT_ID, str(uuid.uuid4()).encode()), (H.TYPE, b"post.created")]


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (b"k", b"{}", [(H.TYPE, b"t")], DecodeReason.MISSING_HEADER),
        (b"k", b"{}", [(H.EVENT_ID, b"\xff"), (H.TYPE, b"t")], DecodeReason.UNDECODABLE),
        (b"k", b"\xff\xfe", GOOD_HEADERS, DecodeReason.UNDECODABLE),
        (b"k", b"not json", GOOD_HEADERS, DecodeReason.NOT_JSON),
        (b"k", b"[1, 2]", GOOD_HEADERS, DecodeReason.WRONG_SHAPE),
        (b"k", None, GOOD_HEADERS, DecodeReason.WRONG_SHAPE),
        (None, b"{}", GOOD_HEADERS, DecodeReason.MISSING_KEY),
        (b"k", b"{}", [(H.EVENT_ID, b"not-a-uuid"), (H.TYPE, b"t")], DecodeReason.WRONG_SHAPE),
        (b"k", b'{"a": "' + b"x" * 2000 + b'"}', GOOD_HEADERS, DecodeReason.OVERSIZED),
    ],
)
def test_bad_input_has_a_reason(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], reason: DecodeReason
) -> None:
    with pytest.raises(DecodeError) as info:
        decode(key, value, headers, max_payload_bytes=1000)
    assert info.value.reason is reason


def test_missing_optional_headers_default() -> None:
    event = decode(b"k", b'{"x": 1}', GOOD_HEADERS)
    assert event.aggregate_type == "post"
    assert event.schema_version == 1
    assert event.occurred_at <= datetime.now(UTC)
