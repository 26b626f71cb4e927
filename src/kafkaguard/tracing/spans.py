"""The spans kafkaguard makes, named and attributed as the messaging conventions say.

- publish: ``create <topic>`` (outbox, background) or ``send <topic>`` (direct, http), kind
  PRODUCER, a child of the caller's current span; its context goes into the event's headers;
- relay: ``send <topic>`` per batch, kind PRODUCER, a *link* to each message's creation context;
- consumer: ``process <topic>`` per event, kind CONSUMER, a *child* of the message's creation
  context (per-event processing), or one per batch-handler call with a link per message; the
  handler's work runs inside it and ``kafkaguard.outcome`` says what became of the event;
- restore: ``restore <topic>`` per dead letter, kind INTERNAL, linked to the original trace.

Guarantee: when tracing is off (``tracing.enabled = false``, or no SDK tracer provider set) none of
this builds anything: :func:`active` is checked first by every caller, so the hot paths pay one call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, SpanKind, Status, StatusCode

from kafkaguard.tracing.context import HeaderForm, context_from, link_from
from kafkaguard.tracing.conventions import (
    DEAD_LETTER_ID,
    DEAD_LETTER_STORE,
    EVENT_TYPE,
    NAMES,
    OUTCOME,
    PUBLISH_MODE,
    ConventionVersion,
    Names,
)
from kafkaguard.tracing.settings import TracingSettings

INSTRUMENTATION = "kafkaguard"
_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER"
MAX_LINKS = 128  # the SDK's default span limit: more would be dropped anyway
MAX_KEY = 256  # characters of a message key in an attribute (keys are outside data of any length)

_enabled = True
_names: Names = NAMES[ConventionVersion.V1_27]
_tracer: tuple[Any, trace.Tracer] | None = None  # (provider, its tracer)


def configure(settings: TracingSettings) -> None:
    """Apply ``[tracing]`` to this process (like OpenTelemetry's tracer provider, process-wide)."""
    global _enabled, _names
    _enabled = settings.enabled
    _names = NAMES[settings.conventions]


def names() -> Names:
    """The attribute names of the configured conventions version."""
    return _names


def active() -> bool:
    """Whether spans are made: tracing enabled and an SDK tracer provider set.

    Called once per event on the consumer's path, so it reads the provider the API keeps once
    ``set_tracer_provider`` ran (0.1 µs) instead of ``get_tracer_provider()`` (1.3 µs: it looks the
    environment up on every call while none is set); a provider named only by the environment
    variable ``OTEL_PYTHON_TRACER_PROVIDER`` is found the slow way.
    """
    if not _enabled:
        return False
    provider = getattr(trace, "_TRACER_PROVIDER", None)
    if provider is None:
        if _FROM_ENVIRONMENT not in os.environ:
            return False
        provider = trace.get_tracer_provider()
    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)


def tracer() -> trace.Tracer:
    """kafkaguard's tracer of the current global provider."""
    global _tracer
    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, provider.get_tracer(INSTRUMENTATION, _version()))
    return _tracer[1]


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kafkaguard")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        return None


def _base(operation: str, topic: str | None) -> dict[str, Any]:
    n = _names
    attrs: dict[str, Any] = {n.system: "kafka", n.operation: operation}
    if n.operation_name is not None:
        attrs[n.operation_name] = operation
    if topic:
        attrs[n.destination] = topic
    return attrs


def _name(operation: str, topic: str | None) -> str:
    return f"{operation} {topic}" if topic else operation


def publish_span(*, topic: str, key: str, event_id: str, event_type: str, mode: str, creates: bool) -> Span:
    """The span of one publish (not yet current; the caller ends it): ``create`` when the event is
    only stored for later (outbox, background), ``send`` when it is delivered now (direct, http)."""
    op = _names.create if creates else _names.send
    attrs = _base(op, topic)
    attrs.update({_names.key: key[:MAX_KEY], _names.message_id: event_id, EVENT_TYPE: event_type, PUBLISH_MODE: mode})
    return tracer().start_span(_name(op, topic), kind=SpanKind.PRODUCER, attributes=attrs)


def links(headers: Iterable[HeaderForm]) -> list[trace.Link]:
    """Links to the contexts of ``headers`` (one per message that carries one, at most :data:`MAX_LINKS`)."""
    out: list[trace.Link] = []
    for h in headers:
        link = link_from(h)
        if link is not None:
            out.append(link)
            if len(out) >= MAX_LINKS:
                break
    return out


def relay_span(topics: Sequence[str], headers: Iterable[HeaderForm]) -> Span:
    """The span of one relay batch: ``send <topic>`` (``send`` when the batch spans topics), linked to
    each message's creation context."""
    distinct = set(topics)
    topic = next(iter(distinct)) if len(distinct) == 1 else None
    attrs = _base(_names.send, topic)
    attrs[_names.batch_count] = len(topics)
    return tracer().start_span(
        _name(_names.send, topic), kind=SpanKind.PRODUCER, attributes=attrs, links=links(headers)
    )


def process_span(
    *,
    topic: str | None,
    partition: int | None,
    offset: int | None,
    key: str | None,
    group: str,
    headers: HeaderForm,
    event_id: str | None = None,
) -> Span:
    """The span of processing one event: a child of the creation context in ``headers`` (a root
    span without one)."""
    n = _names
    attrs = _base(n.process, topic)
    attrs[n.consumer_group] = group
    if partition is not None:
        attrs[n.partition] = str(partition)
    if offset is not None:
        attrs[n.offset] = offset
    if key is not None:
        attrs[n.key] = key[:MAX_KEY]
    if event_id is not None:
        attrs[n.message_id] = event_id
    parent: Context | None = context_from(headers)
    return tracer().start_span(_name(n.process, topic), context=parent, kind=SpanKind.CONSUMER, attributes=attrs)


def batch_process_span(*, topic: str | None, group: str, headers: Sequence[HeaderForm]) -> Span:
    """The span of one batch-handler call over several events: a link to each creation context."""
    n = _names
    attrs = _base(n.process, topic)
    attrs[n.consumer_group] = group
    attrs[n.batch_count] = len(headers)
    return tracer().start_span(_name(n.process, topic), kind=SpanKind.CONSUMER, attributes=attrs, links=links(headers))


def restore_span(*, store: str, dead_letter_id: int, topic: str | None, key: str | None, headers: HeaderForm) -> Span:
    """The span of restoring one dead letter, linked to the trace the event was created in."""
    attrs: dict[str, Any] = {DEAD_LETTER_STORE: store, DEAD_LETTER_ID: dead_letter_id}
    if topic:
        attrs[_names.destination] = topic
    if key is not None:
        attrs[_names.key] = key[:MAX_KEY]
    link = link_from(headers)
    return tracer().start_span(
        _name("restore", topic), kind=SpanKind.INTERNAL, attributes=attrs, links=[link] if link else None
    )


def restore_headers(value: Any) -> HeaderForm:
    """A dead letter's stored headers as a header form: a JSON object stored as text or decoded."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def finish(span: Span, outcome: str, *, error: BaseException | None = None, failed: bool = False) -> None:
    """Set ``kafkaguard.outcome`` on ``span`` (and an error status if ``failed`` or ``error``) and end it."""
    span.set_attribute(OUTCOME, outcome)
    if error is not None:
        span.set_attribute(_names.error_type, type(error).__qualname__)
        span.record_exception(error)
    if failed or error is not None:
        span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()
