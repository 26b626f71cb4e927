"""What every console request needs: settings, the database engine, the handlers, the guard, the templates, the jobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine

from kafkaguard.console.auth import CSRF_FIELD, SESSION_COOKIE, Guard, Operator
from kafkaguard.console.jobs import Jobs
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.settings import KafkaguardSettings


def templates() -> Environment:
    """The console's Jinja2 templates, HTML-escaped by default."""
    return Environment(
        loader=PackageLoader("kafkaguard.console", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True)
class Console:
    """One console app's state (no module-level state: two apps in one process are independent)."""

    settings: KafkaguardSettings
    engine: Engine
    registry: HandlerRegistry | None
    guard: Guard
    env: Environment
    jobs: Jobs

    def operator(self, request: Request) -> Operator | None:
        """The logged-in operator of ``request``, or None."""
        return self.guard.session(request.cookies.get(SESSION_COOKIE))

    def render(self, request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        """Page ``name`` with the common values (who is logged in, their CSRF token, the settings shown)."""
        operator = self.operator(request)
        html = self.env.get_template(name).render(
            operator=operator,
            csrf=self.guard.csrf_token(operator) if operator else "",
            csrf_field=CSRF_FIELD,
            writable=self.guard.writable,
            edit_and_retry=self.settings.console.edit_and_retry,
            has_registry=self.registry is not None,
            **values,
        )
        return HTMLResponse(html, status_code=status)
