"""Helpers shared by CLI commands: settings, engines, output that outside data cannot break.

Values read from the stores (keys, types, payloads, error messages) are outside data: tables show
them through :func:`kafkaguard.logtext.short` and never as Rich markup, and JSON output escapes
control and format characters, so a key cannot move the cursor, hide text or crash the renderer.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from kafkaguard.cli.errors import URL_FORM
from kafkaguard.db.engine import sync_engine
from kafkaguard.db.readiness import require_engine_tables
from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.metrics import Metrics, serve_metrics
from kafkaguard.restore.schedule import parse_interval
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.mongo_documents import is_mongo_url

PIPED_WIDTH = 1000
"""Columns of the output when it is not a terminal (a pipe, a file): tables are not cut to 80
columns for ``grep`` or a log (set ``COLUMNS`` to choose another width)."""


def _console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = PIPED_WIDTH if piped and "COLUMNS" not in os.environ else None
    return Console(stderr=stderr, soft_wrap=True, width=width)


out = _console(stderr=False)
err = _console(stderr=True)

CONNECT_TIMEOUT_S = 10
"""Seconds an operator command waits for PostgreSQL to accept a connection (unless the URL sets
``connect_timeout``): an unreachable host fails the command instead of hanging it."""

CELL_LIMIT = 60
"""Characters of an outside value in a table cell (``show`` and ``--json`` print everything)."""


def load_settings(database_url: str | None = None, schema: str | None = None) -> KafkaguardSettings:
    """Settings from the environment / file, with CLI options winning."""
    overrides: dict[str, Any] = {}
    if database_url:
        overrides["database_url"] = database_url
    if schema:
        overrides["db_schema"] = schema
    return KafkaguardSettings(**overrides)


def engine_for(settings: KafkaguardSettings, *, tables: Sequence[str] = ()) -> Engine:
    """An engine on ``settings.database_url`` (any URL form) / ``db_schema`` for an operator command.

    ``tables``: checked to exist in the schema now (:class:`~kafkaguard.errors.SchemaNotReadyError`
    names the schema and ``kafkaguard db upgrade`` otherwise).
    """
    if not settings.database_url:
        raise ConfigurationError("no database URL: pass --url or set KAFKAGUARD_DATABASE_URL")
    if is_mongo_url(settings.database_url):
        raise ConfigurationError(
            "this command reads kafkaguard's SQL tables; a mongodb:// URL (the document store) is served by "
            "`kafkaguard consume` and the Python API (ListenerRestoreJob / PublisherRestoreJob.from_settings): "
            "see docs/operations/mongodb.md"
        )
    engine = sync_engine(with_connect_timeout(settings.database_url), schema=settings.db_schema)
    if tables:
        require_engine_tables(engine, settings.db_schema, tables)
    return engine


def with_connect_timeout(url: str) -> str:
    """``url`` with ``connect_timeout`` set, unless it sets one already.

    Raises :class:`ConfigurationError` when ``url`` cannot be parsed (without quoting it: it holds
    the password).
    """
    try:
        parsed = make_url(url)
        _ = parsed.port  # a non-numeric port fails here, not at the first connection
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's messages quote the URL
        raise ConfigurationError(f"bad database URL ({type(exc).__name__}): {URL_FORM}") from None
    if "connect_timeout" in parsed.query or not parsed.drivername.startswith("postgresql"):
        return url
    return parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_S)}).render_as_string(hide_password=False)


def interval_option(value: str, option: str) -> float:
    """``value`` of ``option`` (``60s``, ``5m``, ...) in seconds; a bad value is a usage error (exit 2)."""
    try:
        return parse_interval(value)
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from exc


def once_or_every(once: bool, every: str | None) -> float | None:
    """Check ``--once`` / ``--every`` (exactly one); the interval in seconds, or None for once."""
    if once == (every is not None):
        raise typer.BadParameter("pass exactly one of --once or --every", param_hint="'--once' / '--every'")
    return None if every is None else interval_option(every, "--every")


def say(text: str, *, error: bool = False) -> None:
    """Print ``text`` as it is (no Rich markup: it may quote outside values)."""
    (err if error else out).print(Text(text), highlight=False)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return value


_UNSAFE = re.compile(r"[^\x20-\x7e\n]")


def _escape_unsafe(match: re.Match[str]) -> str:
    char = match.group(0)
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        code = ord(char)
        if code > 0xFFFF:  # JSON escapes astral characters as a surrogate pair
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
        return f"\\u{code:04x}"
    return char


def json_text(data: Any) -> str:
    """``data`` as indented JSON (datetimes ISO, UUIDs as text, bytes as hex) that is safe on a
    terminal: readable text stays as it is, control, format and unassigned characters and lone
    surrogates are ``\\u`` escapes (JSON structure is ASCII, so they only occur inside strings)."""
    return _UNSAFE.sub(_escape_unsafe, json.dumps(data, default=_jsonable, indent=2, ensure_ascii=False))


def print_json(data: Any) -> None:
    """Print ``data`` as JSON for scripts (see :func:`json_text`)."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def cell(value: Any) -> Text:
    """One table cell: outside values bounded and escaped (:func:`kafkaguard.logtext.short`), never markup."""
    if value is None:
        return Text("")
    if isinstance(value, int | float):
        return Text(str(value))
    return Text(short(_jsonable(value), CELL_LIMIT))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    """Print ``rows`` as a Rich table of ``columns``."""
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    out.print(table)


def start_metrics(
    port: int | None, addr: str, database_url: str, schema: str | None, *, parts: Sequence[str]
) -> Metrics | None:
    """Serve ``/metrics`` on ``addr:port`` (the counters of the worker ``parts`` + database gauges); None
    when no port."""
    if port is None:
        return None
    metrics = Metrics(parts=frozenset(parts))
    # The database gauges read kafkaguard's SQL tables; a document store has the counters only.
    engine = None if is_mongo_url(database_url) else sync_engine(database_url, schema=schema, pool_size=1)
    serve_metrics(metrics, port, addr=addr, engine=engine)
    err.print(f"metrics on http://{addr}:{port}/metrics", highlight=False, markup=False)
    return metrics


BootstrapOpt = Annotated[
    str | None,
    typer.Option("--bootstrap-servers", help="Kafka bootstrap servers \\[env KAFKAGUARD_BOOTSTRAP_SERVERS]."),
]
BootstrapAliasOpt = Annotated[
    str | None, typer.Option("--bootstrap", hidden=True, help="Deprecated spelling of --bootstrap-servers.")
]


def bootstrap_option(servers: str | None, alias: str | None) -> str | None:
    """``--bootstrap-servers``, or the deprecated ``--bootstrap`` (with a warning); both at once is a usage error."""
    if alias is None:
        return servers
    if servers is not None and servers != alias:
        raise typer.BadParameter("pass --bootstrap-servers only", param_hint="'--bootstrap'")
    say("warning: --bootstrap is deprecated; use --bootstrap-servers", error=True)
    return alias


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text, or json: one JSON object per line with the event's id, key, position and trace id "
        "\\[env KAFKAGUARD_LOG_FORMAT].",
    ),
]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port \\[env KAFKAGUARD_METRICS_PORT]."),
]
MetricsAddrOpt = Annotated[str, typer.Option("--metrics-addr", help="Address for /metrics (loopback by default).")]
