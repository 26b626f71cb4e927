"""Property tests of the pure pieces that make outside data harmless (issue 13)."""

from __future__ import annotations

import contextlib
import json
import uuid

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import exc as sa_exc

from kafkaguard import raw_headers
from kafkaguard.consumer.identity import content_hash
from kafkaguard.db.safe_text import bytes_text, pg_json, pg_text
from kafkaguard.envelope import DecodeError, DecodeReason, Event, decode, too_deep
from kafkaguard.logtext import short
from kafkaguard.policies.classify import ErrorClassifier, is_deterministic

header_names = st.text(max_size=40)
header_values = st.none() | st.binary(max_size=60)
headers = st.lists(st.tuples(header_names, header_values), max_size=8)


@given(headers)
def test_raw_headers_round_trip_exactly(hdrs: list[tuple[str, bytes | None]]) -> None:
    assert raw_headers.decode(raw_headers.encode(hdrs)) == hdrs


@given(st.binary(max_size=80))
def test_raw_headers_decode_refuses_garbage_with_its_own_error(data: bytes) -> None:
    with contextlib.suppress(raw_headers.RawHeadersError):
        raw_headers.decode(data)


@given(st.text())
def test_pg_text_is_storable(value: str) -> None:
    out = pg_text(value)
    assert "\x00" not in out
    out.encode("utf-8")  # no lone surrogate left
    if "\x00" not in value and "\\x00" not in value:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return
        assert out == value  # ordinary text is left alone


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_pg_json_leaves_no_escape_postgres_refuses(value: object) -> None:
    text = json.dumps(pg_json(value))
    assert "\\u0000" not in text
    json.loads(text)


@given(st.binary(max_size=100))
def test_bytes_text_is_storable(raw: bytes) -> None:
    out = bytes_text(raw)
    assert out is not None and "\x00" not in out
    out.encode("utf-8")


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


json_values = st.recursive(
    st.none() | st.integers() | st.text(alphabet='ab"\\[]{}'),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(alphabet='k"[{', max_size=3), c, max_size=3),
    max_leaves=40,
)


@given(json_values, st.integers(min_value=0, max_value=12))
def test_too_deep_agrees_with_the_real_depth(value: object, limit: int) -> None:
    text = json.dumps(value)
    assert too_deep(text, limit) == (_depth(value) > limit)
    assert too_deep(text.encode(), limit) == (_depth(value) > limit)


def test_too_deep_sees_a_5000_level_array_without_recursing() -> None:
    deep = "[" * 5000 + "]" * 5000
    assert too_deep(deep, 100) and not too_deep("[" * 100 + "]" * 100, 100)


good_headers = Event(type="t.x", key="k", payload={}).kafka_headers()


@settings(max_examples=300)
@given(
    st.none() | st.binary(max_size=40),
    st.none() | st.binary(max_size=200) | st.just(b'{"a": ' + b"[" * 3000 + b"]" * 3000 + b"}"),
    st.lists(st.tuples(st.sampled_from(["event_id", "type", "x", "schema_version", "occurred_at"]), header_values))
    | st.just(good_headers),
)
def test_decode_raises_only_decode_errors(
    key: bytes | None, value: bytes | None, hdrs: list[tuple[str, bytes | None]]
) -> None:
    try:
        event = decode(key, value, hdrs)
    except DecodeError as exc:
        reason = exc.reason
    else:
        assert event.key and "\x00" not in event.key and "\x00" not in event.type
        return
    assert isinstance(reason, DecodeReason)


def test_decode_names_the_depth_limit() -> None:
    value = b'{"a": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    with pytest.raises(DecodeError) as info:
        decode(b"k", value, good_headers)
    assert info.value.reason is DecodeReason.TOO_DEEP
    with pytest.raises(DecodeError) as info:
        decode(b"a\x00b", b"{}", good_headers)
    assert info.value.reason is DecodeReason.INVALID_KEY


@given(
    st.one_of(st.text(max_size=3000), st.binary(max_size=3000), st.integers()), st.integers(min_value=10, max_value=200)
)
def test_short_is_bounded_and_printable(value: object, limit: int) -> None:
    out = short(value, limit)
    assert len(out) <= limit + 30
    assert out.isprintable()


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_content_hash_ignores_key_order_and_spacing(payload: dict[str, object]) -> None:
    eid = uuid.uuid4()
    a = Event(type="t.x", key="k", payload=payload, event_id=eid)
    reordered = json.loads(json.dumps(dict(reversed(list(payload.items()))), indent=2))
    b = Event(type="t.x", key="k", payload=reordered, event_id=eid)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(Event(type="t.x", key="k", payload={**payload, "extra!": 1}, event_id=eid))


def test_data_and_integrity_errors_are_permanent() -> None:
    data = sa_exc.DataError("INSERT ...", {}, psycopg.errors.StringDataRightTruncation("too long"))
    integrity = sa_exc.IntegrityError("INSERT ...", {}, psycopg.errors.UniqueViolation("dup"))
    lost = sa_exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown("bye"))
    assert is_deterministic(data) and is_deterministic(integrity) and not is_deterministic(lost)
    classifier = ErrorClassifier()
    assert not classifier.is_retriable(data) and not classifier.is_retriable(integrity)
    assert classifier.is_retriable(lost)
    assert not classifier.is_retriable(RecursionError("deep"))
