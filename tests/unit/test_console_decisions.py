"""The console's pure parts: failure-group fingerprints, redaction, the token/session/CSRF guard, the
bind check of ``kafkaguard console``, form parsing and the SVG chart."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from kafkaguard.cli.console import bind_problem, is_loopback
from kafkaguard.console.auth import Guard, Operator, Refusal
from kafkaguard.console.charts import arrivals_chart
from kafkaguard.console.fingerprint import NO_FRAME, group_id, throwing_frame
from kafkaguard.console.forms import FormError, ids_of, parse_form, query_of
from kafkaguard.console.queries import Bucket
from kafkaguard.console.redact import REDACTED, redact
from kafkaguard.console.settings import ConsoleSettings
from kafkaguard.errors import ConfigurationError
from kafkaguard.stores.dead_letter_queries import Store

STACK = """Traceback (most recent call last):
  File "/app/consumer.py", line 10, in apply
    handler(event)
  File "/app/handlers.py", line 42, in on_order
    raise ValueError("bad")
ValueError: bad
"""


@pytest.mark.parametrize(
    ("stack", "frame"),
    [
        (STACK, 'File "/app/handlers.py", line 42, in on_order'),
        ("ValueError: no traceback here", NO_FRAME),
        (None, NO_FRAME),
        ("", NO_FRAME),
    ],
)
def test_the_throwing_frame_is_the_last_frame_line(stack: str | None, frame: str) -> None:
    assert throwing_frame(stack) == frame


def test_group_ids_are_short_stable_and_tell_frames_apart() -> None:
    a = group_id("ValueError", 'File "a.py", line 1, in f')
    assert a == group_id("ValueError", 'File "a.py", line 1, in f') and len(a) == 12
    assert a != group_id("ValueError", 'File "a.py", line 2, in f')
    assert a != group_id("TypeError", 'File "a.py", line 1, in f')


def test_redaction_hides_named_fields_at_any_depth_case_insensitively() -> None:
    value = {"card": "4111", "order": {"Card": "4111", "items": [{"card": 1, "sku": "x"}]}, "n": 1}
    assert redact(value, ["CARD"]) == {
        "card": REDACTED, "order": {"Card": REDACTED, "items": [{"card": REDACTED, "sku": "x"}]}, "n": 1
    }  # fmt: skip
    assert redact(value, []) is value
    assert redact("not json", ["card"]) == "not json"


def test_no_write_is_authorised_without_a_configured_token() -> None:
    refusal = Guard(None).authorise(cookie=None, authorization="Bearer anything", csrf="x")
    assert isinstance(refusal, Refusal) and refusal.status == 403


def test_a_session_needs_its_own_csrf_token() -> None:
    guard = Guard("s3cret")
    cookie = guard.new_session("alice")
    operator = guard.session(cookie)
    assert operator is not None and operator.name == "alice"
    assert guard.authorise(cookie=cookie, authorization=None, csrf=guard.csrf_token(operator)) == operator
    other = guard.csrf_token(Operator("alice", "another-session"))
    assert guard.authorise(cookie=cookie, authorization=None, csrf=other) == Refusal(403, _reason(guard, cookie))
    assert isinstance(guard.authorise(cookie=None, authorization=None, csrf=None), Refusal)


def _reason(guard: Guard, cookie: str) -> str:
    refused = guard.authorise(cookie=cookie, authorization=None, csrf="0")
    assert isinstance(refused, Refusal)
    return refused.reason


def test_sessions_are_signed_by_the_app_that_issued_them() -> None:
    guard = Guard("s3cret")
    cookie = guard.new_session("alice")
    assert Guard("s3cret").session(cookie) is None  # another app run: another key
    nonce, _, signature = cookie.split(".")
    root = base64.urlsafe_b64encode(b"root").decode()
    assert guard.session(f"{nonce}.{root}.{signature}") is None  # the name cannot be changed
    assert guard.session("garbage") is None and guard.session(None) is None


def test_header_clients_use_the_bearer_token_and_the_bearer_csrf_token() -> None:
    guard = Guard("s3cret")
    csrf = guard.csrf_token(Operator("api", "bearer"))
    who = guard.authorise(cookie=None, authorization="Bearer s3cret", csrf=csrf, actor="ci-bot")
    assert who == Operator("ci-bot", "bearer")
    wrong = guard.authorise(cookie=None, authorization="Bearer nope", csrf=csrf)
    assert isinstance(wrong, Refusal) and wrong.status == 401
    assert "s3cret" not in wrong.reason


def test_the_token_comes_from_the_value_or_the_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "token"
    path.write_text("from-file\n")
    assert ConsoleSettings(operator_token_file=path).token() == "from-file"
    assert ConsoleSettings(operator_token="value", operator_token_file=path).token() == "value"  # type: ignore[arg-type]
    assert ConsoleSettings().token() is None
    with pytest.raises(ConfigurationError, match="cannot be read"):
        ConsoleSettings(operator_token_file=path.with_name("missing")).token()


@pytest.mark.parametrize(
    ("host", "token", "refused"),
    [
        ("127.0.0.1", False, False), ("localhost", False, False), ("::1", False, False), ("127.0.0.2", False, False),
        ("0.0.0.0", False, True), ("10.1.2.3", False, True), ("console.example", False, True),
        ("0.0.0.0", True, False),
    ],
)  # fmt: skip
def test_a_non_loopback_host_needs_a_token(host: str, token: bool, refused: bool) -> None:
    assert (bind_problem(host, token) is not None) is refused
    assert is_loopback(host) is (host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"))


def test_forms_and_query_strings() -> None:
    fields = parse_form(b"store=publisher&id=3&id=1&id=3&status=any&since=2026-01-02T03:04&group=abc")
    assert ids_of(fields) == [3, 1]
    query = query_of(fields)
    assert query.store is Store.PUBLISHER and query.status is None and query.group == "abc"
    assert query.since == datetime(2026, 1, 2, 3, 4)
    assert query.params() == {"store": "publisher", "status": "any", "group": "abc", "since": "2026-01-02T03:04:00"}
    for bad in (b"id=x", b"store=nope", b"since=yesterday", b"after=-1"):
        with pytest.raises(FormError):
            f = parse_form(bad)
            ids_of(f)
            query_of(f)


def test_the_chart_is_svg_with_a_bar_pair_per_hour() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    svg = arrivals_chart([Bucket(start.replace(hour=h), h, 24 - h) for h in range(24)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2 + 48  # the legend's two, then arrived and restored per hour
    assert "00:00 arrived: 0" in svg and "23:00 restored: 1" in svg
