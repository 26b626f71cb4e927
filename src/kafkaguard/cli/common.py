"""Helpers shared by CLI commands: settings, engines, output."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from kafkaguard.db.engine import sync_engine
from kafkaguard.errors import ConfigurationError
from kafkaguard.metrics import Metrics, serve_metrics
from kafkaguard.settings import KafkaguardSettings

out = Console(soft_wrap=True)
err = Console(stderr=True)


def load_settings(database_url: str | None = None, schema: str | None = None) -> KafkaguardSettings:
    """Settings from the environment / file, with CLI options winning."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if schema:
        overrides["db_schema"] = schema
    return KafkaguardSettings(**overrides)


def engine_for(settings: KafkaguardSettings) -> Engine:
    if not settings.database_url:
        raise ConfigurationError("no database URL: pass --url or set KAFKAGUARD_DATABASE_URL")
    return sync_engine(settings.database_url, schema=settings.db_schema)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


def print_json(data: Any) -> None:
    """Print ``data`` as JSON (datetimes ISO, UUIDs as text, bytes as hex) for scripts."""
    out.print_json(json.dumps(data, default=_jsonable))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    """Print ``rows`` as a Rich table of ``columns``."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(_jsonable(row.get(c))) for c in columns))
    out.print(table)


def start_metrics(port: int | None, addr: str, database_url: str, schema: str | None) -> Metrics | None:
    """Serve ``/metrics`` on ``addr:port`` (worker counters + database gauges); None when no port."""
    if port is None:
        return None
    metrics = Metrics()
    serve_metrics(metrics, port, addr=addr, engine=sync_engine(database_url, schema=schema, pool_size=1))
    err.print(f"metrics on http://{addr}:{port}/metrics")
    return metrics


MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port [env KAFKAGUARD_METRICS_PORT]."),
]
MetricsAddrOpt = Annotated[str, typer.Option("--metrics-addr", help="Address for /metrics (loopback by default).")]
