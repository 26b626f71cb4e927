"""The activity service's HTTP API: members' activities, and the receiving endpoint for ``http`` mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from examples.dailyfeed.activity.handlers import registry
from examples.dailyfeed.activity.models import MemberActivity
from examples.dailyfeed.config import DailyfeedSettings
from kafkaguard import ConfigurationError, ConsumerSettings, create_async_engine, create_engine
from kafkaguard import receiving_router as kafkaguard_receiving_router

RECEIVE_PATH = "/kafkaguard/events"
BIGINT_MAX = 2**63 - 1


def create_app(settings: DailyfeedSettings | None = None) -> FastAPI:
    settings = settings or DailyfeedSettings()
    engine = create_async_engine(url=settings.database_url, schema=settings.activity_schema, pool_size=10)
    apply_engine = create_engine(url=settings.database_url, schema=settings.activity_schema, pool_size=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()
        apply_engine.dispose()

    app = FastAPI(title="dailyfeed activity service", lifespan=lifespan)
    app.include_router(receiving_router(settings, apply_engine), prefix="")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/members/{member_id}/activities")
    async def activities(
        member_id: Annotated[int, Path(gt=0, le=BIGINT_MAX)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[str | None, Query(description="ISO time: only activities before it")] = None,
    ) -> dict[str, Any]:
        query = select(MemberActivity).where(MemberActivity.member_id == member_id)
        if before:
            query = query.where(MemberActivity.occurred_at < parse_before(before))
        async with sessions() as db:
            rows = (await db.scalars(query.order_by(MemberActivity.occurred_at.desc()).limit(limit))).all()
            total = await db.scalar(select(func.count()).where(MemberActivity.member_id == member_id))
        return {
            "member_id": member_id,
            "total": total,
            "activities": [
                {
                    "event_id": str(r.event_id),
                    "type": r.activity_type,
                    "post_id": r.post_id,
                    "comment_id": r.comment_id,
                    "occurred_at": r.occurred_at.isoformat(),
                }
                for r in rows
            ],
        }

    return app


def parse_before(value: str) -> datetime:
    """``before`` as an aware time (a time without an offset is UTC); 422 if it is not ISO 8601."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, detail={"error": "bad_before", "detail": str(exc)}) from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def receiving_router(settings: DailyfeedSettings, engine: Any) -> Any:
    """kafkaguard's receiving endpoint for ``http`` mode, applying through the same handlers + inbox.

    It accepts only requests signed with ``DAILYFEED_HTTP_SECRET`` (as the content service signs them).
    """
    if settings.http_secret is None:
        raise ConfigurationError("set DAILYFEED_HTTP_SECRET: the receiving endpoint accepts signed requests only")
    consumer = ConsumerSettings(http_secrets=(settings.http_secret,))
    return kafkaguard_receiving_router(registry, engine, settings.activity_group, settings=consumer)
