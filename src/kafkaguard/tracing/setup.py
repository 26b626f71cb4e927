"""A tracer provider for worker commands (``kafkaguard relay|consume|restore|forward``).

An application embedding kafkaguard sets up OpenTelemetry itself; a worker command does it from
``[tracing] exporter``: ``otlp`` (OTLP over HTTP, configured by the standard ``OTEL_EXPORTER_OTLP_*``
variables) or ``console``. Both need the SDK (``pip install 'kafkaguard[tracing]'``); without it the
command stops with a message naming the extra, not a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from kafkaguard.errors import ConfigurationError
from kafkaguard.tracing.settings import Exporter, TracingSettings
from kafkaguard.tracing.spans import configure


def check_exporter(settings: TracingSettings) -> None:
    """Raise :class:`ConfigurationError` now if ``settings.exporter`` needs packages that are not
    installed (a worker command checks at start, before it connects to anything)."""
    if not settings.enabled or settings.exporter is Exporter.NONE:
        return
    import importlib.util

    needed = ["opentelemetry.sdk"]
    if settings.exporter is Exporter.OTLP:
        needed.append("opentelemetry.exporter.otlp.proto.http")
    for module in needed:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise ConfigurationError(
                f"tracing.exporter = {settings.exporter.value!r} needs {module} (not installed): "
                "pip install 'kafkaguard[tracing]', or set tracing.exporter = 'none'"
            )


def start_tracing(settings: TracingSettings, command: str) -> Callable[[], None]:
    """Apply ``settings`` and, unless the exporter is ``none``, install an SDK tracer provider that
    exports with a batch processor. Returns the shutdown function (flushes pending spans)."""
    configure(settings)
    if not settings.enabled or settings.exporter is Exporter.NONE:
        return lambda: None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError as exc:
        raise ConfigurationError(
            f"tracing.exporter = {settings.exporter.value!r} needs the OpenTelemetry SDK: "
            "pip install 'kafkaguard[tracing]' (or set tracing.exporter = 'none')"
        ) from exc
    exporter: SpanExporter
    if settings.exporter is Exporter.OTLP:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ConfigurationError(
                "tracing.exporter = 'otlp' needs opentelemetry-exporter-otlp-proto-http:"
                " pip install 'kafkaguard[tracing]'"
            ) from exc
        exporter = OTLPSpanExporter()
    else:
        exporter = ConsoleSpanExporter()
    name = settings.service_name or os.environ.get("OTEL_SERVICE_NAME") or f"kafkaguard-{command}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider.shutdown
