"""The W3C trace context carried on events: read from and written to event headers.

Events carry ``traceparent`` (and ``tracestate``) as extra headers: in the outbox row's ``headers``,
on the Kafka message, in dead-letter records. These helpers read them in every form an event's
headers take (a mapping of text, a list of Kafka ``(name, bytes)`` pairs, raw bytes of any kind)
and never raise: a malformed value is no context, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter

from kafkaguard.headers import TRACEPARENT

TRACESTATE = "tracestate"
_TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")

HeaderForm = Mapping[str, str] | Iterable[tuple[Any, Any]] | None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


def trace_headers(headers: HeaderForm) -> dict[str, str]:
    """The trace-context headers among ``headers`` (any form), as text; malformed ones are left out."""
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    try:
        for pair in items:
            name, value = pair
            name = _text(name)
            if name is not None and name.lower() in _TRACE_HEADERS:
                text = _text(value)
                if text is not None and len(text) <= 512:
                    out[name.lower()] = text
    except (TypeError, ValueError):  # not pairs at all: no context
        return out
    return out


class _DictGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _DictGetter()


def context_from(headers: HeaderForm) -> Context | None:
    """The trace context ``headers`` carry (through the global propagator), ``None`` without one."""
    found = trace_headers(headers)
    if TRACEPARENT not in found:
        return None
    ctx = propagate.extract(found, getter=_GETTER)
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return ctx if span_ctx.is_valid else None


def link_from(headers: HeaderForm) -> trace.Link | None:
    """A span link to the context ``headers`` carry, ``None`` without one."""
    ctx = context_from(headers)
    if ctx is None:
        return None
    return trace.Link(trace.get_current_span(ctx).get_span_context())


def current_headers(context: Context | None = None) -> dict[str, str]:
    """The trace-context headers of ``context`` (default: the current one); empty without a valid span."""
    if not trace.get_current_span(context).get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return {k: v for k, v in carrier.items() if k in _TRACE_HEADERS}


def ids_from(headers: HeaderForm) -> tuple[str, str] | None:
    """``(trace id, span id)`` in hex from ``headers``' ``traceparent``, without the SDK (for logs)."""
    value = trace_headers(headers).get(TRACEPARENT)
    match = _TRACEPARENT.match(value) if value else None
    if match is None or set(match.group(1)) == {"0"}:
        return None
    return match.group(1), match.group(2)


def current_ids() -> tuple[str, str] | None:
    """``(trace id, span id)`` of the current span in hex, ``None`` outside a valid span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"
