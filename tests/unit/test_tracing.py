"""Tracing over the in-memory fakes: the trace context on events, the spans' parents, links,
names and outcomes, the conventions setting, and nothing built when tracing is off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from kafkaguard import Event, KafkaguardSettings, Publisher
from kafkaguard.consumer import HandlerRegistry, Worker
from kafkaguard.testing import MemoryConsumerStore, MemoryOutbox, MemoryPublisherDeadLetters, MemorySource
from kafkaguard.tracing import TracingSettings, configure, context_from, ids_from, trace_headers
from kafkaguard.tracing.conventions import ConventionVersion
from tests.tracing_capture import Spans, captured_spans
from tests.unit.consumer_fakes import applier, record

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"


@pytest.fixture
def spans() -> Iterator[Spans]:
    with captured_spans() as captured:
        yield captured
    configure(TracingSettings())


def _event(key: str = "k1", n: int = 0, *, traceparent: str | None = TRACEPARENT, type: str = "t.made") -> Event:
    headers = {"traceparent": traceparent} if traceparent else {}
    return Event(type=type, key=key, payload={"n": n}, headers=headers)


def _registry(calls: list[Any], fail: set[int] | None = None) -> HandlerRegistry:
    tracer = trace.get_tracer("test")
    reg = HandlerRegistry()

    def handle(event: Event, ctx: Any) -> None:
        with tracer.start_as_current_span("handler"):
            if fail and event.payload["n"] in fail:
                raise ValueError("refused (test)")
            calls.append(event.payload["n"])

    reg.register("t.made", handle)
    reg.register_batch("t.many", lambda events, ctx: calls.extend(e.payload["n"] for e in events))
    return reg


def _run(events: list[Event], registry: HandlerRegistry, **settings: Any) -> Worker:
    source = MemorySource([record(e, n) for n, e in enumerate(events)])
    worker = Worker(source, applier(MemoryConsumerStore(), registry, **settings))
    worker._process(source.poll(1000, 0))
    return worker


def _by_offset(spans: Spans, name: str = "process t") -> dict[int, Any]:
    return {int((s.attributes or {})["messaging.kafka.offset"]): s for s in spans.named(name)}


@pytest.mark.parametrize("batch_size", [1, 500])
def test_each_event_is_processed_in_a_child_of_its_creation_context(spans: Spans, batch_size: int) -> None:
    calls: list[int] = []
    first = _event("k1", 0)
    _run([first, _event("k2", 1), first], _registry(calls), batch_size=batch_size)  # the third: a duplicate
    processed = _by_offset(spans)
    assert sorted(processed) == [0, 1, 2]
    for span in processed.values():
        assert span.kind is SpanKind.CONSUMER
        assert f"{span.context.trace_id:032x}" == TRACE_ID
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT
        attrs = span.attributes or {}
        assert attrs["messaging.system"] == "kafka"
        assert attrs["messaging.operation.type"] == attrs["messaging.operation.name"] == "process"
        assert attrs["messaging.consumer.group.name"] == "g"
        assert attrs["messaging.destination.name"] == "t"
    assert [(processed[i].attributes or {})["kafkaguard.outcome"] for i in range(3)] == [
        "applied",
        "applied",
        "duplicate",
    ]
    assert (processed[0].attributes or {})["messaging.message.id"] == str(first.event_id)
    handler_parents = {s.parent.span_id for s in spans.named("handler") if s.parent is not None}
    assert handler_parents == {processed[0].context.span_id, processed[1].context.span_id}
    assert calls == [0, 1]


def test_a_failing_event_ends_as_a_dead_letter_with_an_error_status(spans: Spans) -> None:
    calls: list[int] = []
    _run([_event("k1", 0), _event("k2", 1), _event("k3", 2)], _registry(calls, fail={1}))
    final = {}
    for s in spans.named("process t"):  # the chunk's first try was rolled back: the last span of each offset wins
        final[int((s.attributes or {})["messaging.kafka.offset"])] = s
    outcome = {i: (s.attributes or {})["kafkaguard.outcome"] for i, s in final.items()}
    assert outcome == {0: "applied", 1: "dead_lettered", 2: "applied"}
    assert final[1].status.status_code is StatusCode.ERROR
    rolled = [s for s in spans.named("process t") if (s.attributes or {})["kafkaguard.outcome"] == "rolled_back"]
    assert rolled, "the chunk that failed is visible as rolled back"
    assert set(calls) == {0, 2}  # event 0's chunk was rolled back: its handler ran again


def test_a_batch_handler_call_links_every_message(spans: Spans) -> None:
    calls: list[int] = []
    events = [_event(f"k{n}", n, type="t.many", traceparent=f"00-{TRACE_ID}-{n + 1:016x}-01") for n in range(3)]
    _run(events, _registry(calls))
    [span] = spans.named("process t")
    assert span.parent is None
    assert sorted(f"{link.context.span_id:016x}" for link in span.links) == [f"{n + 1:016x}" for n in range(3)]
    assert (span.attributes or {})["messaging.batch.message_count"] == 3
    assert (span.attributes or {})["kafkaguard.outcome"] == "applied"
    assert calls == [0, 1, 2]


def test_older_conventions_use_the_older_names(spans: Spans) -> None:
    configure(TracingSettings(conventions=ConventionVersion.V1_24))
    _run([_event()], _registry([]), batch_size=1)
    [span] = spans.named("process t")
    attrs = span.attributes or {}
    assert attrs["messaging.operation"] == "process"
    assert attrs["messaging.kafka.consumer.group"] == "g"
    assert "messaging.consumer.group.name" not in attrs
    assert attrs["messaging.kafka.message.offset"] == 0


def _publisher(**publish: Any) -> tuple[Publisher, MemoryOutbox]:
    outbox = MemoryOutbox()
    settings = KafkaguardSettings(publish=publish) if publish else KafkaguardSettings()
    return Publisher(settings, outbox=outbox, dead_letters=MemoryPublisherDeadLetters()), outbox


def test_publishing_puts_the_current_context_on_the_event(spans: Spans) -> None:
    publisher, outbox = _publisher()
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        publisher.publish(None, _event(traceparent=None))  # type: ignore[arg-type]
    [create] = spans.named("create outbox.event.t")
    assert create.kind is SpanKind.PRODUCER
    assert create.parent is not None and create.parent.span_id == request.get_span_context().span_id
    assert (create.attributes or {})["kafkaguard.publish.mode"] == "outbox"
    [stored] = outbox.rows
    ids = ids_from(stored["headers"])
    assert ids == (f"{create.context.trace_id:032x}", f"{create.context.span_id:016x}")


def test_a_context_the_caller_set_is_kept(spans: Spans) -> None:
    publisher, outbox = _publisher()
    publisher.publish(None, _event())  # type: ignore[arg-type]
    [stored] = outbox.rows
    assert stored["headers"]["traceparent"] == TRACEPARENT


def test_without_a_tracer_provider_nothing_is_built() -> None:
    publisher, outbox = _publisher()
    with trace.get_tracer("test").start_as_current_span("request"):
        publisher.publish(None, _event(traceparent=None))  # type: ignore[arg-type]
    [stored] = outbox.rows
    assert "traceparent" not in stored["headers"]


def test_tracing_disabled_in_settings_makes_no_spans(spans: Spans) -> None:
    configure(TracingSettings(enabled=False))
    _run([_event()], _registry([]))
    assert spans.named("process t") == []


HEADER_VALUES = st.one_of(st.none(), st.binary(max_size=80), st.text(max_size=80), st.integers())


@given(
    st.one_of(
        st.none(),
        st.dictionaries(st.text(max_size=12), st.text(max_size=80), max_size=4),
        st.lists(st.tuples(st.one_of(st.text(max_size=12), st.binary(max_size=12)), HEADER_VALUES), max_size=4),
        st.lists(st.one_of(st.integers(), st.tuples(st.integers())), max_size=3),
    ),
    st.sampled_from(["traceparent", "TRACEPARENT", "tracestate"]),
    st.one_of(st.text(max_size=80), st.binary(max_size=80)),
)
def test_reading_trace_headers_is_total(headers: Any, name: str, value: Any) -> None:
    """Whatever a message's headers hold, reading its context never raises (a bad one is none)."""
    for form in (headers, [(name, value)], {name: value} if isinstance(value, str) else None):
        found = trace_headers(form)
        assert all(isinstance(v, str) for v in found.values())
        ctx = context_from(form)
        ids = ids_from(form)
        if ids is not None:
            assert len(ids[0]) == 32 and len(ids[1]) == 16
        assert ctx is None or trace.get_current_span(ctx).get_span_context().is_valid


def test_json_log_lines_carry_the_event_and_its_trace(caplog: pytest.LogCaptureFixture) -> None:
    import json

    from kafkaguard.log_json import JsonFormatter, about

    event = _event("k\udcff", 3)  # a key that is not valid UTF-8 text on the way out
    rec = record(_event("order-7", 3), 42, partition=2)
    formatter = JsonFormatter()
    with about(rec):
        line = logging.LogRecord("kafkaguard.consumer", logging.WARNING, __file__, 1, "handler failed %s", ("x",), None)
        doc = json.loads(formatter.format(line))
    assert doc["message"] == "handler failed x"
    assert (doc["topic"], doc["partition"], doc["offset"], doc["key"]) == ("t", 2, 42, "order-7")
    assert doc["trace_id"] == TRACE_ID and doc["span_id"] == PARENT
    assert doc["event_id"] == dict(rec.headers)["event_id"].decode()  # type: ignore[union-attr]
    bad = logging.LogRecord("x", logging.ERROR, __file__, 1, "%d items", ("not a number",), None)
    with about(event):
        assert "arguments did not format" in json.loads(formatter.format(bad))["message"]
    outside = json.loads(formatter.format(logging.LogRecord("x", logging.INFO, __file__, 1, "start", (), None)))
    assert "trace_id" not in outside and "event_id" not in outside


def test_an_exporter_without_its_packages_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from kafkaguard.errors import ConfigurationError
    from kafkaguard.tracing.settings import Exporter
    from kafkaguard.tracing.setup import check_exporter

    check_exporter(TracingSettings())  # none: nothing needed
    check_exporter(TracingSettings(exporter=Exporter.OTLP))  # installed here (the dev extra)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "otlp" in name else real(name, *a))
    with pytest.raises(ConfigurationError, match=r"pip install 'kafkaguard\[tracing\]'"):
        check_exporter(TracingSettings(exporter=Exporter.OTLP))
    check_exporter(TracingSettings(exporter=Exporter.CONSOLE))  # the SDK alone is enough for console
