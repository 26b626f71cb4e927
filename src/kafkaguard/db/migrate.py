"""Apply kafkaguard's Alembic migrations to a database (and optionally a schema of it)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from kafkaguard.errors import ConfigurationError


def alembic_config(url: str, schema: str | None = None) -> Config:
    """An Alembic config pointing at kafkaguard's migrations and ``url``."""
    if not url:
        raise ConfigurationError("a database URL is needed (--url or KAFKAGUARD_DATABASE_URL)")
    cfg = Config()
    cfg.set_main_option("script_location", "kafkaguard:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["url"] = url
    cfg.attributes["schema"] = schema
    return cfg


def upgrade(url: str, *, schema: str | None = None, revision: str = "head") -> None:
    """Bring the database (``schema``, created if missing; else the search_path) up to ``revision``."""
    command.upgrade(alembic_config(url, schema), revision)


def downgrade(url: str, *, schema: str | None = None, revision: str = "base") -> None:
    """Undo migrations down to ``revision``."""
    command.downgrade(alembic_config(url, schema), revision)
