"""One trace from the content service's HTTP request to the activity service's applied effect, on
the real PostgreSQL and Kafka, with the in-memory span exporter (issue 19).

``POST /api/posts`` (FastAPI instrumented by OpenTelemetry's own instrumentation) → ``create
<topic>`` (the outbox row, child of the HTTP span) → the relay's ``send <topic>`` (linked to it) →
the consumer's ``process <topic>`` (child of the creation span) → the handler's work inside it. The
same in ``direct`` mode (``send <topic>`` under the HTTP span); and an event dead-lettered by the
consumer and then restored: the restore span is linked to the original trace.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from examples.dailyfeed.activity.handlers import record_activity
from examples.dailyfeed.content.app import create_app
from examples.dailyfeed.content.publishing import kafkaguard_settings
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from kafkaguard import Event, HandlerContext, HandlerRegistry, KafkaguardSettings, ListenerRestoreJob, Relay, Worker
from kafkaguard.stores.inbox_postgres import PostgresConsumerStore
from tests.examples.dailyfeed_env import Dailyfeed, column
from tests.tracing_capture import Spans, captured_spans

pytestmark = pytest.mark.timeout(240)

Handler = Callable[[Event, HandlerContext[Any]], None]


@pytest.fixture
def spans() -> Iterator[Spans]:
    with captured_spans() as captured:
        yield captured


@pytest.fixture
def topic_pattern(monkeypatch: pytest.MonkeyPatch) -> str:
    """Topics of this test only (the content service reads its topic settings from the environment)."""
    prefix = f"trace{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KAFKAGUARD_TOPICS__PATTERN", prefix + ".{aggregate_type}")
    return prefix


def traced_handler(fail_first: int = 0) -> Handler:
    """dailyfeed's handler inside a span of its own (so the test sees where the handler's work runs);
    the first ``fail_first`` calls raise a permanent error (a dead letter)."""
    calls = {"n": 0}
    tracer = trace.get_tracer("dailyfeed.activity")

    def handle(event: Event, ctx: HandlerContext[Any]) -> None:
        with tracer.start_as_current_span("record_activity"):
            calls["n"] += 1
            if calls["n"] <= fail_first:
                raise ValueError("activity store refused the event (test)")
            record_activity(event, ctx)

    return handle


def consumer_settings(db: Dailyfeed, topic: str) -> KafkaguardSettings:
    s = db.settings
    base = KafkaguardSettings()
    return base.model_copy(
        update={
            "bootstrap_servers": s.bootstrap_servers,
            "database_url": s.database_url,
            "db_schema": s.activity_schema,
            "consumer": base.consumer.model_copy(update={"group_id": s.activity_group, "topics": (topic,)}),
        }
    )


@contextmanager
def running(target: Callable[[threading.Event], None], stop: threading.Event) -> Iterator[None]:
    thread = threading.Thread(target=target, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive()


@contextmanager
def relay_and_consumer(db: Dailyfeed, topic: str, handler: Handler, *, relay: bool = True) -> Iterator[Worker]:
    registry = HandlerRegistry()
    registry.register("post.created", handler)
    worker = Worker.from_settings(consumer_settings(db, topic), registry)
    relay_stop = threading.Event()
    try:
        with running(lambda _stop: worker.run(), worker.stopping):
            if relay:
                with running(Relay.from_settings(kafkaguard_settings(db.settings)).run, relay_stop):
                    yield worker
            else:
                yield worker
    finally:
        store = worker.applier.store
        assert isinstance(store, PostgresConsumerStore)
        store.engine.dispose()  # a worker's engine lives as long as its process; this test's process goes on


def post(db: Dailyfeed) -> str:
    app = create_app(db.settings)
    # OpenTelemetry's ASGI instrumentation (what FastAPIInstrumentor installs), around this app only:
    # the instrumentor would keep the app, and its clients, for the rest of the test session.
    with TestClient(OpenTelemetryMiddleware(app)) as client:
        response = client.post("/api/posts", json={"author_id": 7, "title": "Hello", "body": "traced"})
    assert response.status_code == 201, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def wait_for_span(
    spans: Spans, found: Callable[[], ReadableSpan | None], what: str, timeout: float = 60
) -> ReadableSpan:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        span = found()
        if span is not None:
            return span
        time.sleep(0.1)
    names = sorted({s.name for s in spans.all()})
    raise AssertionError(f"no {what} within {timeout} s; spans seen: {names}")


def one(spans: Spans, name: str, event_id: str, attribute: str = "messaging.message.id") -> ReadableSpan | None:
    matching = [s for s in spans.named(name) if (s.attributes or {}).get(attribute) == event_id]
    assert len(matching) <= 1, f"{len(matching)} {name} spans for {event_id}"
    return matching[0] if matching else None


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def http_span(spans: Spans) -> ReadableSpan:
    # The request's span: the one of the route (the ASGI middleware may add a bare one beside it).
    servers = [
        s for s in spans.all() if s.kind is SpanKind.SERVER and (s.attributes or {}).get("http.route") == "/api/posts"
    ]
    assert len(servers) == 1, [s.name for s in spans.all()]
    return servers[0]


def descends(span: ReadableSpan, ancestor: ReadableSpan, spans: Spans) -> bool:
    """Whether ``ancestor`` is on ``span``'s chain of parents."""
    seen: ReadableSpan | None = span
    while seen is not None and seen.parent is not None:
        if seen.parent.span_id == ancestor.context.span_id:  # type: ignore[union-attr]
            return True
        seen = spans.by_id(seen.parent.span_id)
    return False


def check_process(span: ReadableSpan, parent: ReadableSpan, db: Dailyfeed, topic: str, outcome: str) -> None:
    attrs = span.attributes or {}
    assert span.kind is SpanKind.CONSUMER
    assert parent_id(span) == parent.context.span_id  # type: ignore[union-attr]
    assert span.context.trace_id == parent.context.trace_id  # type: ignore[union-attr]
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.operation.type"] == "process"
    assert attrs["messaging.destination.name"] == topic
    assert attrs["messaging.consumer.group.name"] == db.settings.activity_group
    assert isinstance(attrs["messaging.kafka.offset"], int)
    assert attrs["messaging.destination.partition.id"] in {"0", "1", "2"}
    assert str(attrs["messaging.kafka.message.key"]).startswith("post-")
    assert attrs["kafkaguard.outcome"] == outcome


def test_outbox_mode_one_trace_from_http_request_to_handler(
    dailyfeed: Dailyfeed, spans: Spans, topic_pattern: str
) -> None:
    topic = f"{topic_pattern}.post"
    with relay_and_consumer(dailyfeed, topic, traced_handler()):
        event_id = post(dailyfeed)
        process = wait_for_span(spans, lambda: one(spans, f"process {topic}", event_id), "process span")
    http = http_span(spans)
    create = one(spans, f"create {topic}", event_id)
    assert create is not None and create.kind is SpanKind.PRODUCER
    assert create.context.trace_id == http.context.trace_id
    assert descends(create, http, spans)  # published inside the request
    assert (create.attributes or {})["messaging.operation.type"] == "create"
    assert (create.attributes or {})["kafkaguard.publish.mode"] == "outbox"
    # The relay's batch span links to the creation context (it is not the message's parent).
    sends = [
        s
        for s in spans.named(f"send {topic}")
        if any(link.context.span_id == create.context.span_id for link in s.links)
    ]
    assert len(sends) == 1, [(s.name, len(s.links)) for s in spans.named(f"send {topic}")]
    assert sends[0].kind is SpanKind.PRODUCER
    assert (sends[0].attributes or {})["messaging.batch.message_count"] >= 1
    check_process(process, create, dailyfeed, topic, "applied")
    handler = [s for s in spans.named("record_activity") if parent_id(s) == process.context.span_id]
    assert len(handler) == 1
    assert column(dailyfeed.activity, "SELECT count(*) FROM kafka_inbox WHERE event_id = %s", (event_id,)) == [1]


def test_direct_mode_send_span_is_the_parent_of_processing(
    dailyfeed: Dailyfeed, spans: Spans, topic_pattern: str
) -> None:
    topic = f"{topic_pattern}.post"
    db = Dailyfeed(dailyfeed.settings.model_copy(update={"post_publish_mode": "direct"}), dailyfeed.server)
    with relay_and_consumer(db, topic, traced_handler(), relay=False):
        event_id = post(db)
        process = wait_for_span(spans, lambda: one(spans, f"process {topic}", event_id), "process span")
    http = http_span(spans)
    send = one(spans, f"send {topic}", event_id)
    assert send is not None and send.kind is SpanKind.PRODUCER
    assert send.context.trace_id == http.context.trace_id
    assert descends(send, http, spans)
    assert (send.attributes or {})["kafkaguard.publish.mode"] == "direct"
    assert (send.attributes or {})["kafkaguard.outcome"] == "published"
    check_process(process, send, db, topic, "applied")


def test_a_restored_dead_letter_is_linked_to_the_original_trace(
    dailyfeed: Dailyfeed, spans: Spans, topic_pattern: str
) -> None:
    topic = f"{topic_pattern}.post"
    handler = traced_handler(fail_first=1)
    with relay_and_consumer(dailyfeed, topic, handler):
        event_id = post(dailyfeed)
        process = wait_for_span(spans, lambda: one(spans, f"process {topic}", event_id), "process span")
    create = one(spans, f"create {topic}", event_id)
    assert create is not None
    check_process(process, create, dailyfeed, topic, "dead_lettered")
    assert process.status.status_code is StatusCode.ERROR
    registry = HandlerRegistry()
    registry.register("post.created", handler)  # its next call succeeds
    job = ListenerRestoreJob.from_settings(consumer_settings(dailyfeed, topic), registry)
    try:
        report = job.run_once(dailyfeed.settings.activity_group)
    finally:
        job.close()
    assert report.restored == 1, report
    restores = spans.named(f"restore {topic}")
    assert len(restores) == 1
    restore = restores[0]
    assert (restore.attributes or {})["kafkaguard.outcome"] == "restored"
    assert (restore.attributes or {})["kafkaguard.dead_letter.store"] == "listener"
    assert [link.context.span_id for link in restore.links] == [create.context.span_id]
    assert restore.links[0].context.trace_id == create.context.trace_id
    # The handler's second run is inside the restore span.
    assert [parent_id(s) for s in spans.named("record_activity")][-1] == restore.context.span_id
    assert column(dailyfeed.activity, "SELECT count(*) FROM kafka_inbox WHERE event_id = %s", (event_id,)) == [1]


def test_http_mode_the_receivers_process_span_is_a_child_of_the_send(dailyfeed: Dailyfeed, spans: Spans) -> None:
    from examples.dailyfeed.activity.app import create_app as activity_app

    from kafkaguard.devstack.process import free_ports
    from tests.examples.serving import serving

    (port,) = free_ports(1)
    settings = dailyfeed.settings.model_copy(
        update={"post_publish_mode": "http", "activity_url": f"http://127.0.0.1:{port}"}
    )
    db = Dailyfeed(settings, dailyfeed.server)
    with serving(activity_app(settings), port):
        event_id = post(db)
    send = one(spans, "send outbox.event.post", event_id)  # http mode: delivered now, to the endpoint
    assert send is not None and (send.attributes or {})["kafkaguard.publish.mode"] == "http"
    assert (send.attributes or {})["kafkaguard.outcome"] == "published"
    process = wait_for_span(spans, lambda: one(spans, "process", event_id), "the receiver's process span")
    assert process.kind is SpanKind.CONSUMER
    assert parent_id(process) == send.context.span_id  # type: ignore[union-attr]
    assert (process.attributes or {})["kafkaguard.outcome"] == "applied"
    assert (process.attributes or {})["messaging.consumer.group.name"] == settings.activity_group
