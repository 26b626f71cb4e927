"""Receiving endpoint for the ``http`` publish mode: ``POST {prefix}/events`` with an envelope.

The event is applied through the same inbox path as the Kafka consumer (key lock, dedupe, handler,
inbox row in one transaction). Answers, which the publisher acts on:

- ``200 {"status": "applied"}`` or ``200 {"status": "duplicate"}``: done (idempotent on event_id).
- ``400`` bad envelope, ``404`` unknown type, ``422`` non-retriable handler error: permanent, the
  publisher dead-letters the event.
- ``409 {"status": "blocked"}``: the key has an open listener dead letter here; applying now would
  break its order. Nothing is stored; the publisher dead-letters it and its restore job retries.
- ``503``: PostgreSQL down or a retriable handler error; the publisher retries.

Sync handlers run in a worker thread (``anyio.to_thread``); async handlers run on the event loop
with ``async_engine``. The event loop is never blocked by a database call.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Body
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import DecodeError, Event
from kafkaguard.errors import StoreUnavailableError


def receiving_router(
    registry: HandlerRegistry,
    engine: Engine,
    group: str,
    *,
    async_engine: AsyncEngine | None = None,
    settings: ConsumerSettings | None = None,
    prefix: str = "/kafkaguard",
) -> APIRouter:
    """A FastAPI router applying POSTed envelopes for consumer group ``group`` (see module docstring)."""
    cs = (settings or ConsumerSettings()).model_copy(update={"group_id": group})
    router = APIRouter(prefix=prefix)

    def make_applier() -> Applier:
        # One Applier per request: an Applier is not thread-safe, requests run concurrently.
        return Applier(engine, registry, cs, async_engine=async_engine, stop=threading.Event())

    @router.post("/events")
    async def receive(envelope: Any = Body(...)) -> JSONResponse:  # noqa: B008 - FastAPI's idiom
        try:
            event = Event.from_json(envelope)
        except DecodeError as exc:
            return JSONResponse({"status": "rejected", "reason": exc.reason.value, "detail": exc.detail}, 400)
        reg = registry.get(event.type)
        if reg is None:
            return JSONResponse({"status": "rejected", "reason": "unknown_type", "type": event.type}, 404)
        applier = make_applier()
        try:
            if reg.is_async:
                outcome = await applier._apply_async(None, event, reg, 1)
            else:
                outcome = await run_in_threadpool(applier.apply_once, None, event, reg, 1)
        except StoreUnavailableError as exc:
            return JSONResponse({"status": "unavailable", "detail": str(exc)}, 503)
        except Exception as exc:  # noqa: BLE001 - a handler may raise anything; classified
            if reg.is_async:
                try:
                    await run_in_threadpool(applier.raise_if_store_down, exc)
                except StoreUnavailableError as down:
                    return JSONResponse({"status": "unavailable", "detail": str(down)}, 503)
            body = {"status": "failed", "error_class": type(exc).__name__, "detail": str(exc)[:1000]}
            return JSONResponse(body, 503 if cs.classifier.is_retriable(exc) else 422)
        if outcome is Outcome.BLOCKED:
            return JSONResponse({"status": "blocked", "key": event.key}, 409)
        return JSONResponse({"status": outcome.value, "event_id": str(event.event_id)}, 200)

    return router
