"""The relay's Kafka form of an outbox row equals the envelope's, built from the row's JSON text."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from kafkaguard.envelope import EnvelopeError, Event, decode
from kafkaguard.relay.rows import OutboxRow, to_event, to_message

WHEN = datetime(2026, 11, 22, 3, 0, 0, 123456, tzinfo=UTC)


def row(**changes: Any) -> OutboxRow:
    fields: dict[str, Any] = {
        "id": "0190f1d2-0000-7000-8000-000000000001",
        "seq": 1,
        "aggregatetype": "post",
        "aggregateid": "post-7",
        "type": "post.created",
        "payload_json": '{"title": "héllo", "n": 1}',  # as PostgreSQL renders jsonb
        "headers_json": '{"event_id": "must-not-override", "traceparent": "00-abc-def-01"}',  # jsonb as text
        "occurred_at": WHEN,
        "schema_version": 2,
        "topic": None,
    }
    fields.update(changes)
    return OutboxRow(**fields)


def test_message_carries_the_envelope_headers_of_the_event() -> None:
    r = row()
    msg = to_message(r)
    event = to_event(r)
    assert msg.key == b"post-7"
    assert msg.headers == event.kafka_headers()  # one header builder for every publish path
    assert dict(msg.headers)["event_id"] == str(r.id).encode()  # extras never override the envelope
    assert json.loads(msg.value) == event.payload  # the JSON text itself, not a re-encoding


def test_message_decodes_back_to_the_same_event() -> None:
    r = row(headers_json='{"traceparent": "00-abc-def-01"}')
    msg = to_message(r)
    assert decode(msg.key, msg.value, msg.headers) == to_event(r)


def test_missing_aggregate_type_defaults_like_an_event() -> None:
    msg = to_message(row(aggregatetype=""))
    assert dict(msg.headers)["aggregate_type"] == b"post"
    assert Event(type="post.created", key="k", payload={}).aggregate_type == "post"


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"payload_json": "[1, 2]"}, "not_an_object: .* payload must be a JSON object, not array"),
        ({"payload_json": '"text"'}, "payload must be a JSON object, not string"),
        ({"payload_json": "null"}, "payload must be a JSON object, not null"),
        ({"payload_json": "12.5"}, "payload must be a JSON object, not number"),
        ({"payload_json": "true"}, "payload must be a JSON object, not boolean"),
        ({"type": ""}, "missing_type: .* empty type"),
        ({"aggregateid": ""}, "missing_key: .* empty aggregateid"),
        ({"headers_json": '["not", "an", "object"]'}, "bad_headers: .* headers must be a JSON object, not array"),
        ({"occurred_at": None}, "bad_occurred_at"),
    ],
)
def test_a_row_that_is_not_an_event_is_refused_with_a_reason(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint):
        to_message(row(**changes))
