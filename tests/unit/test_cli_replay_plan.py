"""The checks `dead-letters replay` and `restore listener` make before any record changes (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kafkaguard.cli.common import json_text
from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.last_resort import with_readable_bytes
from kafkaguard.cli.replay_plan import (
    Candidate,
    check_handlers,
    check_requested_ids,
    group_of,
    handler_problems,
    summarise,
)
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.errors import ConfigurationError
from kafkaguard.raw_headers import encode


def _registry() -> HandlerRegistry:
    reg = HandlerRegistry()
    reg.register("order.created", lambda event, ctx: None)

    async def handle_async(event: Any, ctx: Any) -> None:
        return None

    reg.register("order.paid", handle_async)
    return reg


def test_group_of_one_group_or_the_chosen_one() -> None:
    one = [Candidate(1, "pending", "k", "t", "g1"), Candidate(2, "failed", "k2", "t", "g1")]
    assert group_of(one, None) == "g1"
    assert group_of(one, "chosen") == "chosen"


def test_group_of_several_groups_needs_a_choice() -> None:
    two = [Candidate(1, "pending", "k", "t", "g1"), Candidate(2, "pending", "k", "t", "g2")]
    with pytest.raises(UsageProblem, match=r"2 consumer groups \(g1, g2\).*--group"):
        group_of(two, None)


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["order.created"], {}),
        (["order.created", None], {}),  # undecodable: reported by the restore, not refused here
        (["order.shipped"], {"order.shipped": "no handler"}),
        (["order.paid"], {}),  # async handlers are restored like sync ones
    ],
)
def test_handler_problems(types: list[str | None], expected: dict[str, str]) -> None:
    assert handler_problems(_registry(), types) == expected


def test_check_handlers_refuses_naming_types_and_group() -> None:
    check_handlers("app:reg", "g", {})
    with pytest.raises(UsageProblem, match=r"app:reg cannot restore event type\(s\) x \(no handler\) of .* group g"):
        check_handlers("app:reg", "g", {"x": "no handler"})


def test_requested_ids_must_be_open() -> None:
    candidates = [Candidate(1, "pending", "k", "t")]
    check_requested_ids([1], candidates, {})
    with pytest.raises(ConfigurationError, match=r"record 2 is restored .*; record 3 does not exist"):
        check_requested_ids([1, 2, 3], candidates, {2: "restored"})


def test_summary_line_and_completeness() -> None:
    done = summarise("listener", "g", [1, 2], {1: ("restored", None), 2: ("restored", None)}, [1, 2, 5])
    assert done.complete
    assert done.line() == (
        "replay of listener dead letters of group g: 2 of 2 restored (and 1 parked record(s) of the same keys)"
    )
    partial = summarise("listener", "g", [1, 2], {1: ("restored", None), 2: ("pending", "BrokenKeyError")}, [1])
    assert not partial.complete
    assert "1 of 2 restored; not restored: #2 pending (BrokenKeyError)" in partial.line()


def test_readable_bytes_and_headers() -> None:
    raw = encode([("type", b"order.created"), ("bin", b"\xff"), ("none", None), ("caf\udcc3", b"")])
    shown = with_readable_bytes({"raw_key": b"k\xff", "raw_value": "7b7d", "raw_headers": raw})
    assert (shown["raw_key"], shown["raw_key_text"]) == ("6bff", None)
    assert shown["raw_value_json"] == {} and "raw_value" not in shown  # JSON decoded (hex text from show_record)
    binary = with_readable_bytes({"raw_value": b"\xff{", "raw_key": None})
    assert (binary["raw_value"], binary["raw_value_text"]) == ("ff7b", None)
    for not_json in (b"{", b"NaN", b"[" * 100_000, b"1" * 10_000):  # truncated, non-standard, too deep, too long
        plain = with_readable_bytes({"raw_value": not_json})
        assert plain["raw_value"] == not_json.hex() and "raw_value_json" not in plain
    headers = shown["raw_headers_decoded"]
    assert headers[0] == {"name": "type", "value": "order.created", "value_hex": b"order.created".hex()}
    assert headers[1] == {"name": "bin", "value": None, "value_hex": "ff"}
    assert headers[2] == {"name": "none", "value": None, "value_hex": None}
    assert headers[3]["name"] == "caf\\xc3" and headers[3]["name_hex"] == "636166c3"


def test_unreadable_raw_headers_are_reported_not_raised() -> None:
    shown = with_readable_bytes({"raw_headers": b"garbage"})
    assert shown["raw_headers_decoded"] is None and "KGH1" in shown["raw_headers_error"]


def test_json_text_escapes_what_a_terminal_would_act_on() -> None:
    text = json_text({"key": "a\x1b[2Jb\u202e\x85", "ok": "café ✓ 😀", "lone": "\udcff"})
    assert "\x1b" not in text and "\u202e" not in text and "\x85" not in text
    assert "café ✓ 😀" in text
    assert "\\u001b[2Jb\\u202e\\u0085" in text and "\\udcff" in text
