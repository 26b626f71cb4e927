"""The content service's API on the real PostgreSQL (outbox mode): every endpoint, good and bad input.

A successful write leaves exactly one outbox row and one ``content_writes`` row with the event id
the response names; a refused request (4xx) leaves every table unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from examples.dailyfeed.content.app import create_app
from fastapi.testclient import TestClient

from tests.examples.dailyfeed_env import CONTENT_TABLES, Dailyfeed, column, snapshot

BIG = 2**63  # one past PostgreSQL's bigint


@pytest.fixture
def client(dailyfeed: Dailyfeed) -> Iterator[TestClient]:
    with TestClient(create_app(dailyfeed.settings)) as c:
        yield c


def written(db: Dailyfeed, event_id: str, event_type: str) -> None:
    """The write's event is journalled once and in the outbox once, under the same id."""
    writes = column(db.content, "SELECT type FROM content_writes WHERE event_id = %s", (event_id,))
    outbox = column(db.content, "SELECT type FROM outbox WHERE id = %s", (event_id,))
    assert writes == [event_type]
    assert outbox == [event_type]


def new_post(client: TestClient, author: int = 7) -> dict[str, Any]:
    response = client.post("/api/posts", json={"author_id": author, "title": "Hello", "body": "first post"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def new_comment(client: TestClient, post_id: int, author: int = 8) -> dict[str, Any]:
    response = client.post(f"/api/posts/{post_id}/comments", json={"author_id": author, "body": "nice"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_post_lifecycle_writes_one_event_per_write(client: TestClient, dailyfeed: Dailyfeed) -> None:
    post = new_post(client)
    written(dailyfeed, post["event_id"], "post.created")
    assert client.get(f"/api/posts/{post['id']}").json()["title"] == "Hello"

    updated = client.put(f"/api/posts/{post['id']}", json={"author_id": 9, "title": "Hello again"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["title"], updated.json()["body"]) == ("Hello again", "first post")
    assert updated.json()["updated_at"] > post["updated_at"]
    written(dailyfeed, updated.json()["event_id"], "post.updated")

    deleted = client.delete(f"/api/posts/{post['id']}", params={"author_id": 7})
    assert deleted.status_code == 200, deleted.text
    written(dailyfeed, deleted.json()["event_id"], "post.deleted")
    assert client.get(f"/api/posts/{post['id']}").status_code == 404
    members = column(dailyfeed.content, "SELECT member_id FROM content_writes ORDER BY committed_at, type")
    assert sorted(members) == [7, 7, 9]
    assert column(dailyfeed.content, "SELECT count(*) FROM outbox") == [3]


def test_comment_lifecycle_writes_one_event_per_write(client: TestClient, dailyfeed: Dailyfeed) -> None:
    post = new_post(client)
    comment = new_comment(client, post["id"])
    assert comment["post_id"] == post["id"]
    written(dailyfeed, comment["event_id"], "comment.created")

    url = f"/api/posts/{post['id']}/comments/{comment['id']}"
    updated = client.put(url, json={"author_id": 8, "body": "very nice"})
    assert (updated.status_code, updated.json()["body"]) == (200, "very nice"), updated.text
    written(dailyfeed, updated.json()["event_id"], "comment.updated")

    deleted = client.delete(url, params={"author_id": 8})
    assert deleted.status_code == 200, deleted.text
    written(dailyfeed, deleted.json()["event_id"], "comment.deleted")
    assert column(dailyfeed.content, "SELECT count(*) FROM comments") == [0]
    assert column(dailyfeed.content, "SELECT count(*) FROM content_writes") == [4]
    assert column(dailyfeed.content, "SELECT count(*) FROM outbox") == [4]


POST_BAD_BODIES = [
    pytest.param(b'{"author_id": 1, "title": "x", "body": ', "json_invalid", id="invalid-json"),
    pytest.param(b'["author_id", 1]', "model_attributes_type", id="not-an-object"),
    pytest.param(b'{"author_id": 1, "title": "x"}', "missing", id="missing-body"),
    pytest.param(b'{"title": "x", "body": "y"}', "missing", id="missing-author"),
    pytest.param(b'{"author_id": "seven", "title": "x", "body": "y"}', "int_type", id="author-not-int"),
    pytest.param(b'{"author_id": "7", "title": "x", "body": "y"}', "int_type", id="author-as-string"),
    pytest.param(b'{"author_id": true, "title": "x", "body": "y"}', "int_type", id="author-bool"),
    pytest.param(b'{"author_id": 1, "title": 5, "body": "y"}', "string_type", id="title-not-str"),
    pytest.param(b'{"author_id": 0, "title": "x", "body": "y"}', "greater_than", id="author-zero"),
    pytest.param(b'{"author_id": 9223372036854775808, "title": "x", "body": "y"}', "less_than_equal", id="author-huge"),
    pytest.param(b'{"author_id": 1, "title": "   ", "body": "y"}', "string_too_short", id="blank-title"),
    pytest.param(b'{"author_id": 1, "title": "x", "body": "a\\u0000b"}', "nul_character", id="nul-in-body"),
    pytest.param(b'{"author_id": 1, "title": "x", "body": "y", "pinned": true}', "extra_forbidden", id="unknown-field"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "error_type"), POST_BAD_BODIES)
def test_bad_post_bodies_are_refused_and_write_nothing(
    client: TestClient, dailyfeed: Dailyfeed, raw: bytes, error_type: str
) -> None:
    new_post(client)
    before = snapshot(dailyfeed.content, CONTENT_TABLES)
    response = client.post("/api/posts", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert error_type in {e["type"] for e in response.json()["detail"]}, response.text
    assert snapshot(dailyfeed.content, CONTENT_TABLES) == before


def test_bad_requests_on_existing_rows_are_refused_and_write_nothing(client: TestClient, dailyfeed: Dailyfeed) -> None:
    post = new_post(client)
    comment = new_comment(client, post["id"])
    pid, cid, oid = post["id"], comment["id"], new_post(client)["id"]
    before = snapshot(dailyfeed.content, CONTENT_TABLES)
    refused = {
        ("PUT", f"/api/posts/{pid}", '{"author_id": 1}'): (422, "nothing_to_update"),
        ("PUT", f"/api/posts/{pid}", '{"author_id": 1, "title": null, "body": null}'): (422, "nothing_to_update"),
        ("PUT", f"/api/posts/{pid}", '{"title": "x"}'): (422, "missing"),
        ("PUT", f"/api/posts/{pid}", '{"author_id": 1, "title": "x", "owner": 2}'): (422, "extra_forbidden"),
        ("PUT", "/api/posts/999999", '{"author_id": 1, "title": "x"}'): (404, "post_not_found"),
        ("PUT", f"/api/posts/{BIG}", '{"author_id": 1, "title": "x"}'): (422, "less_than_equal"),
        ("PUT", "/api/posts/abc", '{"author_id": 1, "title": "x"}'): (422, "int_parsing"),
        ("DELETE", f"/api/posts/{pid}", None): (422, "missing"),
        ("DELETE", f"/api/posts/{pid}?author_id=x", None): (422, "int_parsing"),
        ("DELETE", f"/api/posts/{pid}?author_id=0", None): (422, "greater_than"),
        ("DELETE", "/api/posts/999999?author_id=1", None): (404, "post_not_found"),
        ("DELETE", "/api/posts/-1?author_id=1", None): (422, "greater_than"),
        ("GET", "/api/posts/999999", None): (404, "post_not_found"),
        ("GET", f"/api/posts/{BIG}", None): (422, "less_than_equal"),
        ("POST", "/api/posts/999999/comments", '{"author_id": 1, "body": "x"}'): (404, "post_not_found"),
        ("POST", f"/api/posts/{pid}/comments", '{"author_id": 1}'): (422, "missing"),
        ("POST", f"/api/posts/{pid}/comments", '{"author_id": 1, "body": ""}'): (422, "string_too_short"),
        ("POST", f"/api/posts/{pid}/comments", '{"author_id": 1, "body": "x", "post_id": 3}'): (422, "extra_forbidden"),
        ("POST", f"/api/posts/{pid}/comments", '{"author_id": 1, "body": "x"'): (422, "json_invalid"),
        ("PUT", f"/api/posts/{pid}/comments/{cid}", '{"author_id": 1}'): (422, "missing"),
        ("PUT", f"/api/posts/{pid}/comments/{cid}", '{"author_id": [1], "body": "x"}'): (422, "int_type"),
        ("PUT", f"/api/posts/{pid}/comments/999999", '{"author_id": 1, "body": "x"}'): (404, "comment_not_found"),
        ("PUT", f"/api/posts/{oid}/comments/{cid}", '{"author_id": 1, "body": "x"}'): (404, "comment_not_found"),
        ("DELETE", f"/api/posts/{pid}/comments/{cid}", None): (422, "missing"),
        ("DELETE", f"/api/posts/{pid}/comments/999999?author_id=1", None): (404, "comment_not_found"),
        ("DELETE", f"/api/posts/{oid}/comments/{cid}?author_id=1", None): (404, "comment_not_found"),
    }  # fmt: skip
    for (method, url, raw), (status, error) in refused.items():
        response = client.request(method, url, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == status, (method, url, raw, response.text)
        assert error in error_names(response.json()), (method, url, raw, response.text)
    assert snapshot(dailyfeed.content, CONTENT_TABLES) == before


def error_names(body: dict[str, Any]) -> set[str]:
    """The error names of a 4xx body: ours (``{"detail": {"error": ...}}``) or FastAPI's validation list."""
    detail = body.get("detail")
    if isinstance(detail, dict):
        return {str(detail.get("error"))}
    if isinstance(detail, list):
        return {str(e.get("type")) for e in detail}
    return set()
