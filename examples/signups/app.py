"""The signup service (FastAPI, async SQLAlchemy): ``POST /signups`` and ``GET /health``.

Guarantee: the ``users`` row and the ``user.signed_up`` outbox row commit in ONE transaction, so
every committed signup reaches Kafka (``kafkaguard relay`` publishes the outbox) and a rolled-back
one never does. Bad input is refused with 422 before anything is written; a taken address is 409.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from examples.signups.events import EMAIL_PATTERN, signed_up
from examples.signups.models import User
from kafkaguard import KafkaguardSettings, Publisher, create_async_engine


class SignupIn(BaseModel):
    """The request body: unknown fields and wrong types refused."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)
    email: str = Field(max_length=320, pattern=EMAIL_PATTERN)
    name: str = Field(min_length=1, max_length=200)


class SignupOut(BaseModel):
    """The answer: the new user and the id of its event (to follow it through the pipeline)."""

    user_id: int
    email: str
    event_id: str


def create_app(settings: KafkaguardSettings | None = None) -> FastAPI:
    """The service on ``settings`` (default: ``KAFKAGUARD_*`` and the file named by ``KAFKAGUARD_CONFIG``).

    The engine's connections find kafkaguard's outbox and the ``users`` table in ``settings.db_schema``.
    """
    settings = settings or KafkaguardSettings()
    engine = create_async_engine(settings, pool_size=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    publisher = Publisher.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        publisher.close()
        await engine.dispose()

    app = FastAPI(title="signup service", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/signups", status_code=201)
    async def sign_up(body: SignupIn) -> SignupOut:
        try:
            async with sessions() as db, db.begin():
                user = User(email=body.email.lower(), name=body.name)
                db.add(user)
                await db.flush()  # the id, for the event's key and payload
                event = signed_up(user.id, user.email, user.name)
                await publisher.publish_async(db, event)  # outbox mode: a row in this transaction
        except IntegrityError:
            raise HTTPException(409, detail={"error": "email_taken"}) from None
        return SignupOut(user_id=user.id, email=user.email, event_id=str(event.event_id))

    return app
