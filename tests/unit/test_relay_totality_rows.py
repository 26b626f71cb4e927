"""Issue 13, relay side: no outbox row can crash the relay's row path (pure parts, no Kafka or database)."""

from datetime import UTC, datetime
from typing import Any

import pytest

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH
from kafkaguard.relay.limits import barrier_bytes
from kafkaguard.relay.plan import RowOutcome, plan_round
from kafkaguard.relay.rows import OutboxRow, RejectReason, RowRejectedError, to_message
from kafkaguard.relay.settings import RelaySettings

A, T, R = RowOutcome.ACKED, RowOutcome.TRANSIENT, RowOutcome.REJECTED


def row(**changes: Any) -> OutboxRow:
    fields: dict[str, Any] = {
        "id": "0190f1d2-0000-7000-8000-000000000001",
        "seq": 1,
        "aggregatetype": "doc",
        "aggregateid": "doc-1",
        "type": "doc.saved",
        "payload_json": '{"n": 1}',
        "headers_json": None,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "schema_version": 1,
        "topic": None,
    }
    fields.update(changes)
    return OutboxRow(**fields)


def nested_object(levels: int) -> str:
    return '{"a": ' * levels + "1" + "}" * levels


def reason_of(r: OutboxRow, **kw: Any) -> RejectReason:
    with pytest.raises(RowRejectedError) as info:
        to_message(r, **kw)
    return info.value.reason


def test_a_5000_level_array_is_rejected_without_decoding() -> None:
    deep = "[" * 5000 + "]" * 5000  # valid jsonb; json.loads raises RecursionError on it
    assert reason_of(row(payload_json=deep)) is RejectReason.NOT_AN_OBJECT


def test_an_object_deeper_than_the_limit_is_too_deep() -> None:
    assert reason_of(row(payload_json=nested_object(5000))) is RejectReason.TOO_DEEP
    limit = DEFAULT_MAX_PAYLOAD_DEPTH
    assert to_message(row(payload_json=nested_object(limit))).value == nested_object(limit).encode()
    assert reason_of(row(payload_json=nested_object(limit + 1))) is RejectReason.TOO_DEEP
    with pytest.raises(RowRejectedError, match=r"^too_deep: outbox row .* deeper than 3 levels"):
        to_message(row(payload_json=nested_object(4)), max_depth=3)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    payload = '{"s": "' + "[{" * 500 + '"}'
    assert to_message(row(payload_json=payload)).value == payload.encode()


def test_deep_headers_are_too_deep_and_never_reach_json() -> None:
    assert reason_of(row(headers_json='{"h": ' + nested_object(5000) + "}")) is RejectReason.TOO_DEEP


def test_the_payload_is_forwarded_as_text_never_decoded() -> None:
    # Not JSON at all (PostgreSQL never renders this): still forwarded, proving nothing parsed it.
    assert to_message(row(payload_json="{not json")).value == b"{not json"


def test_the_setting_defaults_to_the_envelope_limit() -> None:
    assert RelaySettings().max_payload_depth == DEFAULT_MAX_PAYLOAD_DEPTH
    with pytest.raises(ValueError, match="max_payload_depth"):
        RelaySettings(max_payload_depth=0)


@pytest.mark.parametrize("key", ["unknown", "k" * 300, "k" * 5000, "ключ-🙂"])
def test_any_non_empty_key_is_an_ordinary_key(key: str) -> None:
    msg = to_message(row(aggregateid=key))
    assert msg.key == key.encode()


def test_odd_header_values_become_text() -> None:
    msg = to_message(row(headers_json='{"n": 5, "o": {"x": [1]}, "t": "ok", "z": null}'))
    extra = dict(msg.headers)
    assert (extra["n"], extra["t"], extra["z"]) == (b"5", b"ok", b"None")


def test_the_size_estimate_is_at_least_the_bytes_sent_for_ascii() -> None:
    r = row(headers_json='{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}')
    msg = to_message(r)
    exact = len(msg.value) + len(msg.key) + sum(len(k) + len(v) for k, v in msg.headers)
    assert exact <= msg.size <= exact + 200


def test_rows_without_a_key_neither_stop_nor_wait() -> None:
    plan = plan_round([("", 1, R), ("", 2, R), ("k", 3, A)], block_key=True)
    assert (plan.dead_letter, plan.remove, plan.stopped) == ([1, 2], [3], set())


@pytest.mark.parametrize(
    ("producer", "topic", "barrier"),
    [(1_000_000, None, 900_000), (1_000_000, 64_000, 57_600), (1_000_000, 2_000_000, 900_000)],
)
def test_barrier_size_is_90_percent_of_the_smaller_limit(producer: int, topic: int | None, barrier: int) -> None:
    assert barrier_bytes(producer, topic) == barrier
