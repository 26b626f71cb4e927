"""Fixtures and helpers for the dailyfeed reference services' tests: two fresh schemas per test.

``dailyfeed`` gives :class:`DailyfeedSettings` whose content and activity schemas exist, with
kafkaguard's migrations and each service's own tables, and are dropped after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from examples.dailyfeed.activity.models import Base as ActivityBase
from examples.dailyfeed.config import DailyfeedSettings
from examples.dailyfeed.content.models import Base as ContentBase
from psycopg import sql
from pydantic import SecretStr

from kafkaguard.db import migrate
from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.postgres import PostgresServer
from tests.http_auth import SECRET

CONTENT_TABLES = ("posts", "comments", "content_writes", "outbox", "kafka_publisher_dead_letters")
ACTIVITY_TABLES = ("member_activities", "kafka_inbox", "kafka_listener_dead_letters")


@dataclass(frozen=True)
class Dailyfeed:
    """The settings of one test's dailyfeed services, and libpq strings for each schema."""

    settings: DailyfeedSettings
    server: PostgresServer

    def conninfo(self, schema: str) -> str:
        return f"{self.server.conninfo()} options=-csearch_path={schema}"

    @property
    def content(self) -> str:
        return self.conninfo(self.settings.content_schema)

    @property
    def activity(self) -> str:
        return self.conninfo(self.settings.activity_schema)


def create_schema(server: PostgresServer, schema: str, base: Any) -> None:
    """Create ``schema`` with kafkaguard's migrations and ``base``'s tables."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    migrate.upgrade(server.url(), schema=schema)
    engine = sync_engine(server.url(), schema=schema)
    base.metadata.create_all(engine)
    engine.dispose()


def drop_schemas(server: PostgresServer, *schemas: str) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for schema in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def dailyfeed(postgres: PostgresServer, kafka_bootstrap: str) -> Iterator[Dailyfeed]:
    """Fresh ``content`` and ``activity`` schemas for this test (outbox mode, the session broker)."""
    suffix = uuid.uuid4().hex[:10]
    content, activity = f"c_{suffix}", f"a_{suffix}"
    create_schema(postgres, content, ContentBase)
    create_schema(postgres, activity, ActivityBase)
    settings = DailyfeedSettings(
        database_url=postgres.url(),
        bootstrap_servers=kafka_bootstrap,
        content_schema=content,
        activity_schema=activity,
        activity_group=f"activity-{suffix}",
        http_secret=SecretStr(SECRET),
    )
    yield Dailyfeed(settings, postgres)
    drop_schemas(postgres, content, activity)


def snapshot(conninfo: str, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (ordered), to assert that a refused request wrote nothing."""
    with psycopg.connect(conninfo) as conn:
        return {
            t: conn.execute(sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(t))).fetchall() for t in tables
        }


def count(conninfo: str, table: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
    assert row is not None
    return int(row[0])


def column(conninfo: str, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The first column of ``query``'s rows (parameterised)."""
    with psycopg.connect(conninfo) as conn:
        return [r[0] for r in conn.execute(query, params).fetchall()]  # type: ignore[arg-type]
