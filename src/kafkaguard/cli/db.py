"""``kafkaguard db``: apply kafkaguard's schema migrations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer
from alembic.util import CommandError
from rich.console import Console

from kafkaguard.db import migrate
from kafkaguard.errors import ConfigurationError
from kafkaguard.settings import KafkaguardSettings

db_app = typer.Typer(help="kafkaguard's tables: outbox, dead letters, inbox.")
_out = Console(soft_wrap=True)

UrlOption = Annotated[str | None, typer.Option("--url", help="SQLAlchemy URL \\[env KAFKAGUARD_DATABASE_URL].")]
SchemaOption = Annotated[
    str | None, typer.Option("--schema", help="Schema (created if missing) \\[env KAFKAGUARD_DB_SCHEMA].")
]


def _migrate(step: Callable[..., None], url: str, schema: str | None, revision: str) -> None:
    """Run an Alembic step; its own errors (an unknown revision, ...) become one-line kafkaguard errors."""
    try:
        step(url, schema=schema, revision=revision)
    except CommandError as exc:
        raise ConfigurationError(f"migration to {revision!r} failed: {exc}") from exc


@db_app.command("upgrade")
def upgrade(url: UrlOption = None, schema: SchemaOption = None, revision: str = "head") -> None:
    """Create or update kafkaguard's tables (Alembic migrations). Safe to run again."""
    settings = KafkaguardSettings()
    _migrate(migrate.upgrade, url or settings.database_url, schema or settings.db_schema, revision)
    _out.print(
        f"database is at revision {revision}"
        + (f" in schema {schema or settings.db_schema}" if (schema or settings.db_schema) else "")
    )


@db_app.command("downgrade")
def downgrade(revision: str, url: UrlOption = None, schema: SchemaOption = None) -> None:
    """Undo migrations down to REVISION (``base`` removes kafkaguard's tables and their data)."""
    settings = KafkaguardSettings()
    _migrate(migrate.downgrade, url or settings.database_url, schema or settings.db_schema, revision)
    _out.print(f"database is at revision {revision}")
