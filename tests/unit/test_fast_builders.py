"""The poll path builds its frozen dataclasses without their generated ``__init__`` (speed): the
objects are the same as the constructors make — equal, hashable, frozen, defaults applied."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from confluent_kafka import Message

from kafkaguard.consumer.kafka_source import to_record
from kafkaguard.consumer.records import Record
from kafkaguard.envelope import Event, decode


def test_to_record_is_the_record_the_constructor_makes() -> None:
    msg = Message(
        topic="t", partition=2, offset=7, key=b"k", value=b"{}", headers=[("a", b"1")], timestamp=(1, 1_700_000_000_000)
    )
    record = to_record(msg)
    expected = Record("t", 2, 7, b"k", b"{}", [("a", b"1")], datetime.fromtimestamp(1_700_000_000, UTC))
    assert record == expected and dataclasses.asdict(record) == dataclasses.asdict(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.offset = 8  # type: ignore[misc]


def test_decode_makes_the_event_the_constructor_makes_with_its_defaults() -> None:
    event = Event(type="post.created", key="p1", payload={"n": 1}, headers={"traceparent": "00-x"})
    got = decode(event.key.encode(), event.payload_bytes(), [(k, v) for k, v in event.kafka_headers()])
    assert got == event and hash(got.event_id) == hash(event.event_id)
    bare = decode(b"p1", b"{}", [("event_id", str(event.event_id).encode()), ("type", b"post.created")])
    assert bare.aggregate_type == "post" and bare.schema_version == 1 and bare.headers == {}
    assert bare.occurred_at.tzinfo is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        bare.key = "other"  # type: ignore[misc]
