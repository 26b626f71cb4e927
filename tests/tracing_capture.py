"""Spans of a test, in memory: an SDK tracer provider installed as the global one for the block.

OpenTelemetry lets a process set its global provider once; tests need one per test, so this swaps
the API's module state (pinned ``opentelemetry-api``; the swap is checked by the tests using it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


class Spans:
    """The finished spans of the block (``exporter``) with lookups by name and id."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def by_id(self, span_id: int) -> ReadableSpan | None:
        return next((s for s in self.all() if s.context is not None and s.context.span_id == span_id), None)


@contextmanager
def captured_spans() -> Iterator[Spans]:
    """Install an SDK provider exporting to memory; restore the previous global state after."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE)
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    assert trace.get_tracer_provider() is provider
    try:
        yield Spans(exporter)
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved
