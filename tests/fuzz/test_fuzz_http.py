"""Fuzz the ``http`` publish mode's receiving endpoint against the real PostgreSQL (issue 13, Deliver 6 and 7d).

Arbitrary bodies (bytes, broken and deeply nested JSON, envelopes with every field of the wrong
type, keys and payloads with NUL, lone surrogates, NaN, huge numbers) and request headers are
POSTed to :func:`kafkaguard.consumer.http.receiving_router`. Property: never a 5xx (the database
is up and nothing asks for a retriable failure), only the documented statuses, a JSON body, and
no key, payload text or SQL in an error body (database error messages carry SQL parameters).

Requests are signed (``X-Kafkaguard-Signature``) as the publisher signs them; some are sent
unsigned, with a tampered body, a stale timestamp or arbitrary auth header values, and must be
answered 401 with nothing stored, whatever their body.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import example, given
from hypothesis import strategies as st

from kafkaguard.consumer.http import receiving_router
from kafkaguard.db.engine import sync_engine
from kafkaguard.http_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, HttpAuth, RequestAuth
from kafkaguard.testing.fixtures import TestDatabase
from tests.fuzz import app
from tests.fuzz.profile import fuzz_settings
from tests.fuzz.report import FuzzReport
from tests.fuzz.strategies import (
    ANY_CHARS,
    NUL_TEXTS,
    SAFE_CHARS,
    SPECIAL_VALUES,
    SURROGATE_TEXTS,
    Fixture,
    deep,
    wild_json,
)
from tests.http_auth import RECEIVER, SECRET

KEY_MARK = "KEYq7mark"
PAYLOAD_MARK = "PAYz3mark"
STATUSES = {200, 400, 404, 409, 413, 422}
LEAKS = (KEY_MARK, PAYLOAD_MARK, "[SQL:", "[parameters:", "INSERT INTO", "SELECT ")
MISSING = object()


def _keys() -> st.SearchStrategy[Any]:
    tails = st.one_of(st.text(ANY_CHARS, max_size=10), st.sampled_from(SURROGATE_TEXTS + NUL_TEXTS))
    return st.one_of(
        tails.map(lambda t: KEY_MARK + t),
        st.just(""),
        st.integers(256, 20_000).map(lambda n: KEY_MARK + "k" * n),
    )


def _payloads() -> st.SearchStrategy[Any]:
    marked = st.one_of(st.text(ANY_CHARS, max_size=10), st.sampled_from(SURROGATE_TEXTS + NUL_TEXTS)).map(
        lambda t: PAYLOAD_MARK + t
    )
    values = st.one_of(marked, wild_json(), st.floats())
    return st.dictionaries(st.text(SAFE_CHARS, max_size=8).filter(lambda k: k != "fail"), values, max_size=4).map(
        lambda d: {"m": PAYLOAD_MARK, **d}
    )


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """An envelope of ``Event.to_json``'s shape: valid fields, of which up to three are replaced by
    odd values, other JSON types or removed."""
    fields: dict[str, Any] = {
        "event_id": str(draw(st.uuids())),
        "key": draw(_keys()),
        "type": app.TYPE,
        "aggregate_type": "fuzz",
        "payload": draw(_payloads()),
        "headers": draw(st.dictionaries(st.text(ANY_CHARS, max_size=8), st.text(ANY_CHARS, max_size=8), max_size=2)),
        "occurred_at": "2024-02-29T12:00:00+00:00",
        "schema_version": 1,
    }
    odd = {
        "event_id": st.sampled_from(["", "not-a-uuid", "0" * 32, "\x00"]),
        "key": st.sampled_from(["", "\x00", KEY_MARK + "\ud800", KEY_MARK + "\x00"]),
        "type": st.sampled_from([app.UNHANDLED_TYPE, "", "t\x00", "\ud800", "t" * 300]),
        "aggregate_type": st.text(ANY_CHARS, max_size=10),
        "payload": st.sampled_from([[], "", 1, None, [PAYLOAD_MARK]]),
        "headers": st.sampled_from([[], "h", 1, {"a": [1]}, {"\ud800": "\x00"}]),
        "occurred_at": st.sampled_from(["2024-02-29", "not a time", "", 1, "9999-12-31T23:59:59-23:59"]),
        "schema_version": st.one_of(st.integers(), st.sampled_from([float("inf"), float("nan"), "1", "x", 1.5])),
    }
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        choice = draw(st.sampled_from(["odd", "other type", "missing"]))
        if choice == "missing":
            del fields[name]
        else:
            fields[name] = draw(odd[name] if choice == "odd" else wild_json())
    return json.dumps(fields, ensure_ascii=draw(st.booleans()), allow_nan=True).encode("utf-8", "surrogatepass")


def bodies() -> st.SearchStrategy[bytes]:
    return st.one_of(
        envelopes(),
        envelopes(),
        envelopes(),
        st.binary(max_size=64),
        deep(),
        st.sampled_from(SPECIAL_VALUES),
        st.integers(4_000, 6_000).map(lambda n: b'{"event_id":' + b"9" * n + b"}"),
        deep().map(_with_payload),
    )


def _with_payload(payload: bytes) -> bytes:
    head = b'{"event_id":"%s","key":"k","type":"%s","payload":' % (uuid.uuid4().hex.encode(), app.TYPE.encode())
    return head + payload + b"}"


def _envelope(**fields: Any) -> bytes:
    body = {"event_id": "00000000-0000-4000-8000-00000000000d", "key": KEY_MARK, "type": app.TYPE, "payload": {}}
    return json.dumps({**body, **fields}, allow_nan=True).encode()


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


SIGNER = RequestAuth(HttpAuth.HMAC, (SECRET.encode(),))
AUTH_HEADERS = {TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower(), "authorization"}
SIGNED = "signed"
AUTH_CASES = st.sampled_from([SIGNED] * 6 + ["unsigned", "tampered", "stale", "future", "garbage"])


def auth_headers(case: str, body: bytes, garbage: tuple[str, str]) -> dict[str, str]:
    """The auth headers of one request: signed, or refused for the reason ``case`` names."""
    now = time.time()
    if case == "unsigned":
        return {}
    if case == "garbage":
        return {TIMESTAMP_HEADER: garbage[0], SIGNATURE_HEADER: garbage[1]}
    at = {"stale": now - 3600, "future": now + 3600}.get(case, now)
    headers = SIGNER.headers(body, at)
    if case == "tampered":  # signed over another body
        headers = SIGNER.headers(body + b" ", at)
    return headers


HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)
CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 6 + ["text/plain", "application/octet-stream", "", "x/y; charset=zz"]
)


@dataclass(repr=False)
class HttpEnv(Fixture):
    client: TestClient
    conn: psycopg.Connection[Any]

    def reset(self) -> None:
        """Forget earlier examples' events: an event id seen before would answer "duplicate"."""
        with self.conn.transaction():
            for table in ("kafka_inbox", "kafka_listener_dead_letters", "fuzz_effects"):
                self.conn.execute(f"DELETE FROM {table}")


@pytest.fixture
def env(migrated_database: TestDatabase) -> Iterator[HttpEnv]:
    db = migrated_database
    app.create_tables(db.conninfo)
    engine = sync_engine(db.server.url(), schema=db.schema, pool_size=2)
    api = FastAPI()
    api.include_router(receiving_router(app.registry, engine, "fuzz-http", settings=RECEIVER))
    with TestClient(api, raise_server_exceptions=False) as client, psycopg.connect(db.conninfo, autocommit=True) as c:
        yield HttpEnv(client, c)
    engine.dispose()


@fuzz_settings(quick=200, full=3000)
# Bodies that answered 5xx or showed SQL parameters before the endpoint read the body itself.
@example(body=b"[" * 3000 + b"]" * 3000, content_type="application/json", extra={}, auth=SIGNED, garbage=("", ""))
@example(
    body=b'{"event_id":' + b"9" * 5000 + b"}", content_type="application/json", extra={}, auth=SIGNED, garbage=("", "")
)
@example(
    body=_envelope(schema_version=float("inf")),
    content_type="application/json",
    extra={},
    auth=SIGNED,
    garbage=("", ""),
)
@example(body=_envelope(type="\ud800"), content_type="application/json", extra={}, auth=SIGNED, garbage=("", ""))
@example(
    body=_envelope(key=KEY_MARK + "\ud800"), content_type="application/json", extra={}, auth=SIGNED, garbage=("", "")
)
@example(
    body=_envelope(payload={"m": PAYLOAD_MARK + "\x00"}),
    content_type="application/json",
    extra={},
    auth=SIGNED,
    garbage=("", ""),
)
@example(
    body=_envelope(payload={"a": _nested(150)}), content_type="", extra={}, auth=SIGNED, garbage=("", "")
)  # deeper than the limit
# A valid envelope, unsigned or signed over another body: refused before it is read.
@example(body=_envelope(), content_type="application/json", extra={}, auth="unsigned", garbage=("", ""))
@example(body=_envelope(), content_type="application/json", extra={}, auth="tampered", garbage=("", ""))
@given(
    body=bodies(),
    content_type=CONTENT_TYPES,
    extra=st.dictionaries(
        HEADER_TEXT.filter(lambda n: n.lower() not in {"content-length", "host", *AUTH_HEADERS}),
        HEADER_TEXT,
        max_size=3,
    ),
    auth=AUTH_CASES,
    garbage=st.tuples(HEADER_TEXT, HEADER_TEXT),
)
def test_the_receiving_endpoint_never_answers_5xx_nor_leaks(
    env: HttpEnv,
    fuzz_report: FuzzReport,
    body: bytes,
    content_type: str,
    extra: dict[str, str],
    auth: str,
    garbage: tuple[str, str],
) -> None:
    env.reset()
    headers = {**extra, "content-type": content_type} if content_type else dict(extra)
    headers.update(auth_headers(auth, body, garbage))
    response = env.client.post("/kafkaguard/events", content=body, headers=headers)
    fuzz_report.http_requests += 1
    fuzz_report.http_statuses[response.status_code] += 1
    shown = f"HTTP {response.status_code} {response.text[:500]!r} ({auth})"
    if auth != SIGNED:
        assert response.status_code == 401, shown
        assert set(response.json()) == {"status", "reason"}, shown  # nothing of the request, never the secret
        inbox = env.conn.execute("SELECT count(*) FROM kafka_inbox").fetchone()
        assert inbox == (0,), f"{shown}: a refused request was stored"
        return
    assert response.status_code < 500, shown
    assert response.status_code in STATUSES, shown
    assert isinstance(response.json(), dict), shown
    if response.status_code >= 400:
        leaked = [mark for mark in LEAKS if mark in response.text]
        assert not leaked, f"{shown}: the error body shows {leaked}"
