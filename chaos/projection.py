"""The chaos workload's two sides: the business tables of the writer and the consumer's projection.

Producer database (schema of the writing service):
- ``chaos_attempts``: every planned write, recorded (autocommit) *before* its transaction starts;
- ``chaos_writes``: the business write itself, committed together with the event (or not at all).

(Their DDL, for PostgreSQL and MariaDB, is in :mod:`chaos.database`.)

Consumer database: ``chaos_projection``, one row per event id. The handler is an upsert that
increments ``apply_count``, so a second application is measurable even behind the inbox;
``applied_order`` comes from a sequence at first application, recording the order of effects.

``registry`` handles ``chaos.written`` through the inbox; ``create_app`` serves the same handler
as the ``http`` mode's receiving endpoint (settings from ``KAFKAGUARD_*`` environment variables).
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.orm import Session

from chaos.database import UPSERT_PROJECTION, dialect_of
from kafkaguard.consumer.http import receiving_router
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.settings import KafkaguardSettings

EVENT_TYPE = "chaos.written"

registry = HandlerRegistry()


@registry.handler(EVENT_TYPE)
def apply_written(event: Event, ctx: HandlerContext[Session]) -> None:
    """Record one application of ``event`` (first insert, then ``apply_count + 1`` on each repeat)."""
    upsert = text(UPSERT_PROJECTION[dialect_of(ctx.session.get_bind().dialect.name)])
    params = {"event_id": str(event.event_id), "key": event.key, "seq": int(str(event.payload["seq"]))}
    ctx.session.execute(upsert, params)


def create_app() -> FastAPI:
    """The receiving endpoint for ``http`` mode (``uvicorn --factory chaos.projection:create_app``)."""
    settings = KafkaguardSettings()
    engine = sync_engine(settings.database_url, schema=settings.db_schema)
    app = FastAPI()
    app.include_router(receiving_router(registry, engine, settings.consumer.group_id, settings=settings.consumer))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
