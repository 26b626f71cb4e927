"""``kafkaguard console``: serve the operator console (loopback by default).

A non-loopback ``--host`` is refused unless an operator token is configured: the console shows
payloads, and one reachable from a network without a token would be a read-only window for anyone
and a console nobody could act from. With a token, reads stay open and every change needs it.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from kafkaguard.cli.common import bootstrap_option, engine_for, load_settings, say
from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.db import columns as C
from kafkaguard.db.readiness import RESTORE_TABLES

LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) can only be reached from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_problem(host: str, token_configured: bool) -> str | None:
    """Why the console must not listen on ``host``, or None (pure; see the module docstring)."""
    if is_loopback(host) or token_configured:
        return None
    return (
        f"refusing to serve the console on {host}, which is not a loopback address, without an operator token: "
        "set console.operator_token or console.operator_token_file (KAFKAGUARD_CONSOLE__OPERATOR_TOKEN_FILE), "
        "or keep --host 127.0.0.1"
    )


def console(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind \\[env KAFKAGUARD_CONSOLE__HOST]")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port \\[env KAFKAGUARD_CONSOLE__PORT].")] = None,
    app: Annotated[
        str | None, typer.Option("--app", help="module:registry of the handlers (to retry listener dead letters).")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Database URL \\[env KAFKAGUARD_DATABASE_URL].")] = None,
    schema: Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", help="Kafka, for retry and redrive \\[env KAFKAGUARD_BOOTSTRAP_SERVERS]."),
    ] = None,
) -> None:
    """Serve the operator console: failure groups, dead letters, retry / discard / redrive, audit log."""
    import uvicorn

    from kafkaguard.console.app import create_console_app

    settings = load_settings(url, schema)
    servers = bootstrap_option(bootstrap, None)
    updates: dict[str, object] = {"bootstrap_servers": servers} if servers else {}
    console_settings = settings.console.model_copy(
        update={k: v for k, v in (("host", host), ("port", port)) if v is not None}
    )
    settings = settings.model_copy(update={**updates, "console": console_settings})
    problem = bind_problem(console_settings.host, console_settings.token() is not None)
    if problem is not None:
        raise UsageProblem(problem)
    registry = load_handlers(app) if app is not None else None
    engine = engine_for(settings, tables=(*RESTORE_TABLES, C.CONSOLE_AUDIT))
    web = create_console_app(settings, engine, registry=registry)
    mode = "read-only (no operator token)" if console_settings.token() is None else "operator token required to act"
    say(f"kafkaguard console on http://{console_settings.host}:{console_settings.port}/ — {mode}")
    uvicorn.run(web, host=console_settings.host, port=console_settings.port, log_level="warning")
