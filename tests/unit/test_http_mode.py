"""http mode's contract against an in-memory endpoint (httpx.MockTransport): 2xx done, 4xx at once, 5xx retried."""

import httpx
import pytest

from kafkaguard.envelope import Event
from kafkaguard.errors import EventRejectedError, KafkaUnavailableError
from kafkaguard.publisher.http import HttpPublisher
from kafkaguard.publisher.http_rules import retry_delay
from kafkaguard.publisher.settings import PublishSettings
from kafkaguard.topics import topic_for


def _publisher(statuses: list[int], seen: list[dict[str, object]]) -> HttpPublisher:
    def handler(request: httpx.Request) -> httpx.Response:
        import json

        seen.append(json.loads(request.content))
        return httpx.Response(statuses.pop(0))

    settings = PublishSettings(http_default_endpoint="http://consumer/events", http_retries=2)
    # No wait between attempts: the delays themselves are http_rules.retry_delay's (tested there).
    return HttpPublisher(settings, for_aggregate=topic_for, transport=httpx.MockTransport(handler), delay=lambda _: 0.0)


def test_5xx_then_2xx_is_delivered_with_the_envelope() -> None:
    seen: list[dict[str, object]] = []
    event = Event(type="post.created", key="p1", payload={"n": 1})
    _publisher([503, 200], seen).deliver(event)
    assert len(seen) == 2 and seen[-1] == event.to_json()


def test_4xx_is_rejected_at_once() -> None:
    seen: list[dict[str, object]] = []
    with pytest.raises(EventRejectedError, match="HTTP 422"):
        _publisher([422, 200], seen).deliver(Event(type="post.created", key="p1", payload={}))
    assert len(seen) == 1


def test_5xx_retries_are_bounded() -> None:
    seen: list[dict[str, object]] = []
    with pytest.raises(KafkaUnavailableError, match="after 3 attempts"):
        _publisher([500, 502, 503, 200], seen).deliver(Event(type="post.created", key="p1", payload={}))
    assert len(seen) == 3


def test_retries_wait_by_attempt_doubling_up_to_two_seconds() -> None:
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 9)] == [0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    waited: list[int] = []
    statuses = [500, 503, 200]

    def no_wait(attempt: int) -> float:
        waited.append(attempt)
        return 0.0

    publisher = HttpPublisher(
        PublishSettings(http_default_endpoint="http://consumer/events", http_retries=2),
        for_aggregate=topic_for,
        transport=httpx.MockTransport(lambda _request: httpx.Response(statuses.pop(0))),
        delay=no_wait,
    )
    publisher.deliver(Event(type="post.created", key="p1", payload={}))
    assert waited == [1, 2]  # a wait after each failed attempt, none after the accepted one
