"""The activity service's API on the real PostgreSQL: the activities query and the receiving endpoint.

The receiving endpoint (``http`` mode) applies an envelope once (a repeat answers ``duplicate``
and changes nothing); a refused envelope (4xx) and a retriable failure (503) write nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from examples.dailyfeed.activity.app import create_app
from fastapi.testclient import TestClient

from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from tests.examples.dailyfeed_env import ACTIVITY_TABLES, Dailyfeed, column, snapshot
from tests.http_auth import Signing

RECEIVE = "/kafkaguard/events"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(dailyfeed: Dailyfeed) -> Iterator[TestClient]:
    with TestClient(create_app(dailyfeed.settings)) as c:
        c.auth = Signing()  # signed with DAILYFEED_HTTP_SECRET, as the content service signs
        yield c


def activity(member: int, minutes: int, kind: str = "post.created", post_id: int = 1) -> dict[str, Any]:
    event = Event(
        type=kind,
        key=f"post-{post_id}",
        aggregate_type="post",
        payload={"member_id": member, "post_id": post_id, "title": "t"},
        occurred_at=T0 + timedelta(minutes=minutes),
    )
    return event.to_json()


def test_receiving_endpoint_applies_once_and_the_query_reads_it(client: TestClient, dailyfeed: Dailyfeed) -> None:
    events = [activity(5, m, post_id=m + 1) for m in range(3)] + [activity(6, 0, "comment.created")]
    for envelope in events:
        response = client.post(RECEIVE, json=envelope)
        assert (response.status_code, response.json()["status"]) == (200, "applied"), response.text
    again = client.post(RECEIVE, json=events[0])
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert column(dailyfeed.activity, "SELECT max(apply_count) FROM member_activities") == [1]
    assert column(dailyfeed.activity, "SELECT count(*) FROM kafka_inbox") == [4]

    page = client.get("/api/members/5/activities", params={"limit": 2}).json()
    assert page["total"] == 3
    assert [a["event_id"] for a in page["activities"]] == [events[2]["event_id"], events[1]["event_id"]]
    older = client.get("/api/members/5/activities", params={"before": "2025-01-01T00:01:00"}).json()
    assert [a["event_id"] for a in older["activities"]] == [events[0]["event_id"]]  # naive time = UTC
    other = client.get("/api/members/6/activities").json()
    assert (other["total"], other["activities"][0]["type"]) == (1, "comment.created")
    assert client.get("/api/members/404/activities").json() == {"member_id": 404, "total": 0, "activities": []}


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("/api/members/0/activities", "greater_than"),
        ("/api/members/-3/activities", "greater_than"),
        ("/api/members/abc/activities", "int_parsing"),
        ("/api/members/9223372036854775808/activities", "less_than_equal"),
        ("/api/members/5/activities?limit=0", "greater_than_equal"),
        ("/api/members/5/activities?limit=501", "less_than_equal"),
        ("/api/members/5/activities?limit=ten", "int_parsing"),
        ("/api/members/5/activities?before=yesterday", "bad_before"),
    ],
)
def test_activities_query_refuses_bad_parameters(client: TestClient, query: str, error: str) -> None:
    response = client.get(query)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    names = {detail["error"]} if isinstance(detail, dict) else {e["type"] for e in detail}
    assert error in names, response.text


def with_payload(**payload: Any) -> dict[str, Any]:
    envelope = activity(5, 0)
    envelope["payload"] = payload
    return envelope


def without(field: str) -> dict[str, Any]:
    envelope = activity(5, 0)
    del envelope[field]
    return envelope


BAD_ENVELOPES = [
    pytest.param(b'{"event_id": ', 400, "not_json", id="invalid-json"),
    pytest.param(b"[1, 2]", 400, "wrong_shape", id="not-an-object"),
    pytest.param(without("event_id"), 400, "wrong_shape", id="missing-event-id"),
    pytest.param(without("type"), 400, "wrong_shape", id="missing-type"),
    pytest.param(without("key"), 400, "wrong_shape", id="missing-key"),
    pytest.param({**activity(5, 0), "event_id": "not-a-uuid"}, 400, "wrong_shape", id="event-id-not-uuid"),
    pytest.param({**activity(5, 0), "occurred_at": "soon"}, 400, "wrong_shape", id="bad-occurred-at"),
    pytest.param({**activity(5, 0), "payload": [1]}, 400, "wrong_shape", id="payload-not-object"),
    pytest.param({**activity(5, 0), "type": "post.liked"}, 404, "unknown_type", id="unknown-type"),
    pytest.param(with_payload(post_id=1), 422, "KeyError", id="payload-missing-member"),
    pytest.param(with_payload(member_id="5", post_id=1), 422, "ValueError", id="member-as-string"),
    pytest.param(with_payload(member_id=True, post_id=1), 422, "ValueError", id="member-bool"),
    pytest.param(with_payload(member_id=0, post_id=1), 422, "ValueError", id="member-zero"),
    pytest.param(with_payload(member_id=2**63, post_id=1), 422, "ValueError", id="member-huge"),
    pytest.param(with_payload(member_id=5, post_id="one"), 422, "ValueError", id="post-id-not-int"),
]


@pytest.mark.parametrize(("body", "status", "reason"), BAD_ENVELOPES)
def test_receiving_endpoint_refuses_bad_envelopes_and_writes_nothing(
    client: TestClient, dailyfeed: Dailyfeed, body: Any, status: int, reason: str
) -> None:
    assert client.post(RECEIVE, json=activity(9, 0)).status_code == 200
    before = snapshot(dailyfeed.activity, ACTIVITY_TABLES)
    if isinstance(body, bytes):
        response = client.post(RECEIVE, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(RECEIVE, json=body)
    assert response.status_code == status, response.text
    assert reason in response.text, response.text
    assert snapshot(dailyfeed.activity, ACTIVITY_TABLES) == before


def test_receiving_endpoint_answers_503_on_a_retriable_failure_and_writes_nothing(
    client: TestClient, dailyfeed: Dailyfeed
) -> None:
    with psycopg.connect(dailyfeed.activity, autocommit=True) as conn:
        conn.execute("INSERT INTO members_on_hold (member_id) VALUES (%s)", (5,))
    before = snapshot(dailyfeed.activity, ACTIVITY_TABLES)
    response = client.post(RECEIVE, json=activity(5, 0))
    assert (response.status_code, response.json()["error_class"]) == (
        503,
        "examples.dailyfeed.activity.handlers.MemberOnHoldError",
    ), response.text
    assert snapshot(dailyfeed.activity, ACTIVITY_TABLES) == before
    with psycopg.connect(dailyfeed.activity, autocommit=True) as conn:
        conn.execute("DELETE FROM members_on_hold")
    released = client.post(RECEIVE, json=activity(5, 0))
    assert (released.status_code, released.json()["status"]) == (200, "applied")


def test_receiving_endpoint_refuses_an_unsigned_envelope_and_writes_nothing(
    client: TestClient, dailyfeed: Dailyfeed
) -> None:
    before = snapshot(dailyfeed.activity, ACTIVITY_TABLES)
    forged = client.post(RECEIVE, json=activity(5, 0), auth=None)
    assert (forged.status_code, forged.json()) == (401, {"status": "unauthorized", "reason": "missing_signature"})
    other_secret = client.post(RECEIVE, json=activity(5, 0), auth=Signing("another-secret-0123456789abcdef"))
    assert (other_secret.status_code, other_secret.json()["reason"]) == (401, "bad_signature")
    assert snapshot(dailyfeed.activity, ACTIVITY_TABLES) == before


def test_the_activity_service_does_not_start_without_its_http_secret(dailyfeed: Dailyfeed) -> None:
    with pytest.raises(ConfigurationError, match="DAILYFEED_HTTP_SECRET"):
        create_app(dailyfeed.settings.model_copy(update={"http_secret": None}))
