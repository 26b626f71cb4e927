"""Tracing with the OpenTelemetry API: the trace context on events, and the spans of publish,
relay, consume and restore (:mod:`kafkaguard.tracing.spans`).

The API is kafkaguard's only tracing dependency; an application that sets an SDK tracer provider
(``pip install 'kafkaguard[tracing]'``) sees kafkaguard's spans in its traces, and worker commands
set one up from ``[tracing] exporter`` (:mod:`kafkaguard.tracing.setup`).
"""

from kafkaguard.tracing.context import context_from, current_headers, current_ids, ids_from, link_from, trace_headers
from kafkaguard.tracing.conventions import ConventionVersion
from kafkaguard.tracing.settings import Exporter, TracingSettings
from kafkaguard.tracing.spans import active, configure, finish, names

__all__ = [
    "ConventionVersion",
    "Exporter",
    "TracingSettings",
    "active",
    "configure",
    "context_from",
    "current_headers",
    "current_ids",
    "finish",
    "ids_from",
    "link_from",
    "names",
    "trace_headers",
]
