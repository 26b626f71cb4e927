"""Acceptance: the content service in ``http`` mode while the activity service is down.

Every write commits with a publisher dead letter (source ``http``) instead of failing; once the
activity service is back, dailyfeed's batch restores them — handed to the activity service's
listener store and applied by its handlers (``handoff``), or republished to Kafka for its running
consumer (``republish``) — so every committed write has exactly one activity and every dead letter
ends ``restored``.
"""

from __future__ import annotations

from typing import Any

import pytest
from examples.dailyfeed.activity.app import create_app as activity_app
from examples.dailyfeed.activity.handlers import registry
from examples.dailyfeed.batch import Batch
from examples.dailyfeed.config import DailyfeedSettings
from examples.dailyfeed.content.app import create_app as content_app
from fastapi.testclient import TestClient

from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.devstack.process import free_ports
from kafkaguard.testing.fixtures import TopicFactory
from tests.examples.dailyfeed_env import Dailyfeed, column
from tests.examples.serving import serving
from tests.integration.consumer_helpers import start_worker, wait_until


def http_mode(db: Dailyfeed, port: int) -> DailyfeedSettings:
    """The test's settings with both aggregates published over HTTP to ``127.0.0.1:port``."""
    return db.settings.model_copy(
        update={"post_publish_mode": "http", "comment_publish_mode": "http", "activity_url": f"http://127.0.0.1:{port}"}
    )


def write_while_activity_is_down(content: TestClient) -> None:
    """Seven writes of every kind; each must commit although its event cannot be delivered."""
    posts = [content.post("/api/posts", json={"author_id": 100 + i, "title": f"t{i}", "body": "b"}) for i in range(3)]
    assert [p.status_code for p in posts] == [201, 201, 201], [p.text for p in posts]
    pid = posts[0].json()["id"]
    comments = [content.post(f"/api/posts/{pid}/comments", json={"author_id": 200 + i, "body": "c"}) for i in range(2)]
    assert [c.status_code for c in comments] == [201, 201]
    cid = comments[1].json()["id"]
    assert content.put(f"/api/posts/{posts[1].json()['id']}", json={"author_id": 101, "body": "b2"}).status_code == 200
    assert content.delete(f"/api/posts/{pid}/comments/{cid}", params={"author_id": 201}).status_code == 200


def dead_letters(db: Dailyfeed) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in column(db.content, "SELECT ARRAY[event_id::text, source, status] FROM kafka_publisher_dead_letters")
    ]


def committed(db: Dailyfeed) -> set[str]:
    return set(column(db.content, "SELECT event_id::text FROM content_writes"))


def applied(db: Dailyfeed) -> dict[str, int]:
    rows = column(db.activity, "SELECT ARRAY[event_id::text, apply_count::text] FROM member_activities")
    return {r[0]: int(r[1]) for r in rows}


def assert_down_phase(db: Dailyfeed) -> set[str]:
    writes = committed(db)
    assert len(writes) == 7
    assert sorted(dead_letters(db)) == sorted((e, "http", "pending") for e in writes)
    assert applied(db) == {}
    return writes


def test_http_dead_letters_are_handed_to_the_activity_service_by_the_batch(dailyfeed: Dailyfeed) -> None:
    (port,) = free_ports(1)
    settings = http_mode(dailyfeed, port)
    with TestClient(content_app(settings)) as content:
        write_while_activity_is_down(content)
        down = assert_down_phase(dailyfeed)

        with serving(activity_app(settings), port):
            live = content.post("/api/posts", json={"author_id": 300, "title": "back", "body": "up"})
            assert live.status_code == 201, live.text
            assert applied(dailyfeed) == {live.json()["event_id"]: 1}  # delivered at once, no dead letter
            assert len(dead_letters(dailyfeed)) == 7

            batch = Batch(settings, handoff=True)
            try:
                publisher, listener = batch.run()
                again = batch.run()
            finally:
                batch.close()

    assert (publisher.restored, listener.restored) == (7, 7)
    assert (again[0].restored, again[1].restored) == (0, 0)
    assert applied(dailyfeed) == dict.fromkeys(committed(dailyfeed), 1)
    assert committed(dailyfeed) == down | {live.json()["event_id"]}
    assert {s for _, _, s in dead_letters(dailyfeed)} == {"restored"}
    assert column(dailyfeed.activity, "SELECT DISTINCT status FROM kafka_listener_dead_letters") == ["restored"]


def test_http_dead_letters_are_republished_to_kafka_for_the_running_consumer(
    dailyfeed: Dailyfeed, topics: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    post_topic, comment_topic = topics("post"), topics("comment")
    monkeypatch.setenv("KAFKAGUARD_TOPICS__PATTERN", topics.prefix + ".{aggregate_type}")
    (port,) = free_ports(1)
    settings = http_mode(dailyfeed, port)
    with TestClient(content_app(settings)) as content:
        write_while_activity_is_down(content)
    down = assert_down_phase(dailyfeed)
    assert set(column(dailyfeed.content, "SELECT DISTINCT topic FROM kafka_publisher_dead_letters")) == {
        post_topic,
        comment_topic,
    }

    consumer = start_worker(
        settings.bootstrap_servers,
        settings.database_url,
        settings.activity_schema,
        registry,
        ConsumerSettings(group_id=settings.activity_group, topics=(post_topic, comment_topic)),
    )
    batch = Batch(settings, handoff=False)
    try:
        publisher, _ = batch.run()
        wait_until(lambda: set(applied(dailyfeed)) == down, 60, "every republished event to be applied")
    finally:
        batch.close()
        consumer.stop()
    assert publisher.restored == 7
    assert applied(dailyfeed) == dict.fromkeys(down, 1)
    assert {s for _, _, s in dead_letters(dailyfeed)} == {"restored"}
