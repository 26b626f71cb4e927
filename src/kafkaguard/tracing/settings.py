"""Settings of tracing (``[tracing]``): whether kafkaguard makes spans, which attribute names they
carry, and where a worker command exports them."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.tracing.conventions import ConventionVersion


class Exporter(StrEnum):
    """Where ``kafkaguard relay|consume|restore|forward`` send their spans."""

    NONE = "none"  # spans go to whatever tracer provider the process set up (a worker command: none)
    OTLP = "otlp"  # OTLP over HTTP; endpoint from OTEL_EXPORTER_OTLP_ENDPOINT (the tracing extra)
    CONSOLE = "console"  # one JSON document per span on stdout, for a look without a collector


class TracingSettings(BaseModel):
    """Tracing with the OpenTelemetry API. Spans are made only when an SDK tracer provider is set
    (by the application, or by a worker command with ``exporter``); without one, nothing is built."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = Field(
        default=True, description="make spans and carry the trace context on events (when a tracer provider is set)"
    )
    conventions: ConventionVersion = Field(
        default=ConventionVersion.V1_27,
        description="messaging semantic-conventions version of the attribute names: 1.27 (as of 1.44) or 1.24",
    )
    exporter: Exporter = Field(
        default=Exporter.NONE,
        description="worker commands: none, otlp (OTEL_EXPORTER_OTLP_ENDPOINT; needs the tracing extra) or console",
    )
    service_name: str | None = Field(
        default=None,
        description="service.name of a worker command's spans (default OTEL_SERVICE_NAME or kafkaguard-<command>)",
    )
