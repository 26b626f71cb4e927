"""The chaos workload's two sides: the business tables of the writer and the consumer's projection.

Producer database (schema of the writing service):
- ``chaos_attempts``: every planned write, recorded (autocommit) *before* its transaction starts;
- ``chaos_writes``: the business write itself, committed together with the event (or not at all).

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

from kafkaguard.consumer.http import receiving_router
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.settings import KafkaguardSettings

EVENT_TYPE = "chaos.written"

PRODUCER_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_attempts (i integer PRIMARY KEY, key text NOT NULL, seq integer NOT NULL,"
    " event_id uuid NOT NULL, rollback boolean NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chaos_writes (i integer PRIMARY KEY, key text NOT NULL, seq integer NOT NULL,"
    " event_id uuid NOT NULL UNIQUE)",
)
CONSUMER_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS chaos_apply_order",
    "CREATE TABLE IF NOT EXISTS chaos_projection (event_id uuid PRIMARY KEY, key text NOT NULL,"
    " seq integer NOT NULL, apply_count integer NOT NULL DEFAULT 1,"
    " applied_order bigint NOT NULL DEFAULT nextval('chaos_apply_order'))",
)

UPSERT = text(
    "INSERT INTO chaos_projection (event_id, key, seq) VALUES (:event_id, :key, :seq) "
    "ON CONFLICT (event_id) DO UPDATE SET apply_count = chaos_projection.apply_count + 1"
)

registry = HandlerRegistry()


@registry.handler(EVENT_TYPE)
def apply_written(event: Event, ctx: HandlerContext[Session]) -> None:
    """Record one application of ``event`` (first insert, then ``apply_count + 1`` on each repeat)."""
    ctx.session.execute(UPSERT, {"event_id": event.event_id, "key": event.key, "seq": int(str(event.payload["seq"]))})


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
