"""Build the operator console's FastAPI app (:func:`create_console_app`, public as ``kafkaguard.create_console_app``).

Server-rendered pages (Jinja2, SVG charts, no script needed), read-only for everyone; writes as
described in :mod:`kafkaguard.console.writes`. Routes are sync functions: FastAPI runs them in
its thread pool, so a database call never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from sqlalchemy import Engine

from kafkaguard.console import pages, writes
from kafkaguard.console.auth import Guard
from kafkaguard.console.context import Console, templates
from kafkaguard.console.jobs import Jobs
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db.engine import require_postgresql
from kafkaguard.settings import KafkaguardSettings


def create_console_app(
    settings: KafkaguardSettings, engine: Engine, *, registry: HandlerRegistry | None = None
) -> FastAPI:
    """The console over the dead-letter stores of ``engine``'s database (kafkaguard's schema on its search_path).

    ``settings``: ``[console]`` (token, redaction, edit-and-retry) and what retry needs (Kafka for
    republishing, ``[restore]``'s policy and strategy); ``registry``: the handlers of the listener
    records' consumer groups (without it, listener records can be read and discarded, not retried).
    Raises :class:`~kafkaguard.errors.ConfigurationError` if the token file cannot be read, or if
    ``engine`` is not on PostgreSQL (the console's queries are PostgreSQL's so far; on MariaDB the
    ``kafkaguard dead-letters`` commands do the same work).
    """
    require_postgresql(engine, "the operator console (on MariaDB: `kafkaguard dead-letters`)")
    console = Console(settings, engine, registry, Guard(settings.console.token()), templates(), Jobs())
    app = FastAPI(title="kafkaguard console", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(_security_headers)
    app.include_router(pages.router(console))
    app.include_router(writes.router(console))
    app.state.console = console
    return app


SECURITY_HEADERS = {
    # No script runs from anywhere (the pages need none), no framing (the action forms cannot be
    # clickjacked), forms post only to the console itself.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
