"""Engines and connection strings that put kafkaguard's schema first on the search_path."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def _connect_args(schema: str | None) -> dict[str, Any]:
    return {"options": f"-csearch_path={schema}"} if schema else {}


def sync_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """A SQLAlchemy engine (psycopg 3) whose connections use ``schema`` first when given."""
    return create_engine(url, connect_args=_connect_args(schema), pool_pre_ping=True, **kwargs)


def async_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """An asyncio SQLAlchemy engine (psycopg 3) whose connections use ``schema`` first when given."""
    return create_async_engine(url, connect_args=_connect_args(schema), pool_pre_ping=True, **kwargs)


def libpq_conninfo(url: str, *, schema: str | None = None) -> str:
    """A libpq connection string for raw psycopg connections (the relay, LISTEN/NOTIFY)."""
    u = make_url(url)
    parts = {
        "host": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "dbname": u.database or "",
        "user": u.username or "",
        "password": u.password or "",
    }
    query_options = u.query.get("options")
    options = f"-csearch_path={schema}" if schema else (str(query_options) if query_options else "")
    if options:
        parts["options"] = options
    return " ".join(f"{k}='{_quote(v)}'" for k, v in parts.items() if v)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
