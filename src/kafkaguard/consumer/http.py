"""Receiving endpoint for the ``http`` publish mode: ``POST {prefix}/events`` with an envelope.

The event is applied through the same inbox path as the Kafka consumer (key lock, dedupe, handler,
inbox row in one transaction). Answers, which the publisher acts on:

- ``401 {"status": "unauthorized", "reason": ...}``: the request is not authenticated (see
  :mod:`kafkaguard.http_signing`: ``consumer.http_auth``, by default an HMAC signature with one of
  ``consumer.http_secrets``). Checked before the body is decoded: nothing is parsed, applied or
  stored, and the body names only the reason (never a header value, a secret or the payload).
  Without credentials in the settings the router is not created (ConfigurationError), unless
  ``consumer.http_auth = "none"`` opts out explicitly.
- ``200 {"status": "applied"}`` or ``200 {"status": "duplicate"}``: done (idempotent on event_id).
- ``400`` bad envelope (not JSON, nested deeper than the payload depth limit, wrong shape, a key
  or type PostgreSQL cannot store), ``404`` unknown type, ``413`` body larger than
  ``max_payload_bytes`` plus :data:`ENVELOPE_ALLOWANCE`, ``422`` non-retriable handler error (a
  deterministic database error, SQLSTATE class 22 or 23, always is): permanent, the publisher
  dead-letters the event.
- ``409 {"status": "blocked"}``: the key has an open listener dead letter here; applying now would
  break its order. Nothing is stored; the publisher dead-letters it and its restore job retries.
- ``503``: PostgreSQL down or a retriable handler error; the publisher retries.

Any body gets one of these answers, never a 5xx for the body itself. Error bodies name the error
class (and SQLSTATE) but never carry its message, keys or payload text: database error messages
quote SQL parameters and the rows they refused. The full error goes to the log, truncated.

Sync handlers run in a worker thread (``anyio.to_thread``); async handlers run on the event loop
with ``async_engine``. The event loop is never blocked by a database call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import nullcontext
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from opentelemetry.trace import use_span
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.registry import HandlerRegistry, Registration
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, DecodeError, DecodeReason, Event, too_deep
from kafkaguard.errors import ConfigurationError, StoreUnavailableError
from kafkaguard.http_signing import AUTHORIZATION_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, HttpAuth
from kafkaguard.log_json import about
from kafkaguard.logtext import short
from kafkaguard.policies.classify import qualified_name
from kafkaguard.stores.by_database import consumer_store_for
from kafkaguard.tracing import spans

log = logging.getLogger("kafkaguard.consumer.http")

ENVELOPE_ALLOWANCE = 64 * 1024
"""Bytes a body may have beyond ``max_payload_bytes``: the envelope's other fields and headers."""

_DETERMINISTIC_SQLSTATE_CLASSES = ("22", "23")  # data exception, integrity constraint violation


def _sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error (SQLAlchemy's wrapper or psycopg's own), if ``exc`` is one."""
    seen: BaseException | None = exc
    while seen is not None:
        code = getattr(getattr(seen, "orig", None), "sqlstate", None) or getattr(seen, "sqlstate", None)
        if isinstance(code, str):
            return code
        seen = seen.__cause__
    return None


def _rejected(reason: str, detail: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"status": "rejected", "reason": reason, "detail": short(detail, 200)}, status)


def _storable(text: str) -> bool:
    """Whether PostgreSQL ``text`` takes ``text`` (UTF-8 without lone surrogates; NUL is refused by Event)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_envelope(body: bytes, settings: ConsumerSettings) -> Event | JSONResponse:
    """The event in ``body``, or the 4xx answer saying why there is none (pure; never raises)."""
    limit = settings.max_payload_bytes + ENVELOPE_ALLOWANCE
    if len(body) > limit:
        return _rejected(DecodeReason.OVERSIZED.value, f"body of {len(body)} bytes exceeds {limit}", 413)
    # The payload sits one level inside the envelope object.
    if too_deep(body, DEFAULT_MAX_PAYLOAD_DEPTH + 1):
        return _rejected(DecodeReason.TOO_DEEP.value, f"payload nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, int() digit limit
        return _rejected(DecodeReason.NOT_JSON.value, f"the body is not JSON: {type(exc).__name__}")
    try:
        event = Event.from_json(data)
    except DecodeError as exc:
        return _rejected(exc.reason.value, exc.detail)
    except Exception as exc:  # noqa: BLE001 - any other failure to read outside data is a bad envelope
        return _rejected(DecodeReason.WRONG_SHAPE.value, f"envelope field problem: {type(exc).__name__}")
    if not (_storable(event.key) and _storable(event.type)):
        return _rejected(DecodeReason.INVALID_KEY.value, "key and type must be valid Unicode (no lone surrogates)")
    return event


def receiving_router(
    registry: HandlerRegistry,
    engine: Engine,
    group: str,
    *,
    async_engine: AsyncEngine | None = None,
    settings: ConsumerSettings | None = None,
    prefix: str = "/kafkaguard",
) -> APIRouter:
    """A FastAPI router applying POSTed envelopes for consumer group ``group`` (see module docstring).

    Raises :class:`~kafkaguard.errors.ConfigurationError` when ``settings`` authenticate requests
    (``http_auth``, by default ``hmac``) but give no secret or token, or a secret file is unreadable.
    """
    cs = (settings or ConsumerSettings()).model_copy(update={"group_id": group})
    try:
        auth = cs.http_request_auth()  # at start-up: a missing secret is a configuration error, not 401s later
    except ConfigurationError as exc:
        if settings is not None:
            raise
        hint = "; receiving_router got no settings: pass settings=KafkaguardSettings().consumer to read them"
        raise ConfigurationError(f"{exc}{hint}") from None
    if auth.mode is HttpAuth.NONE:
        log.warning("http receiving endpoint for group %s accepts unauthenticated requests (http_auth none)", group)
    router = APIRouter(prefix=prefix)

    store = consumer_store_for(engine, async_engine)  # thread-safe: a session per transaction

    def make_applier() -> Applier:
        # One Applier per request: an Applier is not thread-safe, requests run concurrently.
        return Applier(store, registry, cs, stop=threading.Event())

    def failed(event: Event, exc: BaseException) -> JSONResponse:
        sqlstate = _sqlstate(exc)
        deterministic = sqlstate is not None and sqlstate.startswith(_DETERMINISTIC_SQLSTATE_CLASSES)
        retriable = not deterministic and cs.classifier.is_retriable(exc)
        error_class = qualified_name(type(exc))
        log.warning(
            "http event_id=%s type=%s key=%s failed (%s, sqlstate %s): %s",
            event.event_id, short(event.type), short(event.key), error_class, sqlstate, short(str(exc), 300),
        )  # fmt: skip
        body: dict[str, Any] = {"status": "failed", "error_class": error_class, "event_id": str(event.event_id)}
        if sqlstate is not None:
            body["sqlstate"] = sqlstate
        return JSONResponse(body, 503 if retriable else 422)

    @router.post(
        "/events",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        failure = auth.check(
            body,
            time.time(),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            authorization=request.headers.get(AUTHORIZATION_HEADER),
        )
        if failure is not None:
            # Before anything reads the body: a forged event must not even become a dedupe entry.
            client = request.client.host if request.client else "unknown"
            log.warning("http request from %s refused: 401 %s", client, failure.value)
            challenge = {"WWW-Authenticate": "Bearer"} if auth.mode is HttpAuth.BEARER else None
            return JSONResponse({"status": "unauthorized", "reason": failure.value}, 401, headers=challenge)
        parsed = parse_envelope(body, cs)
        if isinstance(parsed, JSONResponse):
            return parsed
        event = parsed
        reg = registry.get(event.type)
        if reg is None:
            return JSONResponse({"status": "rejected", "reason": "unknown_type", "type": short(event.type, 200)}, 404)
        span = None
        if spans.active():
            span = spans.process_span(
                topic=None, partition=None, offset=None, key=event.key, group=cs.group_id, headers=event.headers,
                event_id=str(event.event_id),
            )  # fmt: skip
        with about(event), use_span(span, end_on_exit=False) if span is not None else nullcontext():
            response, label = await apply(event, reg)
        if span is not None:
            spans.finish(span, label, failed=response.status_code >= 400)
        return response

    async def apply(event: Event, reg: Registration) -> tuple[JSONResponse, str]:
        """The answer to a verified, decoded request, and the outcome for its span."""
        applier = make_applier()
        try:
            if reg.is_async:
                outcome = await applier.apply_once_async(None, event, reg, 1)
            else:
                outcome = await run_in_threadpool(applier.apply_once, None, event, reg, 1)
        except StoreUnavailableError as exc:
            return JSONResponse({"status": "unavailable", "detail": short(str(exc), 200)}, 503), "store_unavailable"
        except Exception as exc:  # noqa: BLE001 - a handler may raise anything; classified
            if reg.is_async:
                try:
                    await run_in_threadpool(applier.raise_if_store_down, exc)
                except StoreUnavailableError as down:
                    body = {"status": "unavailable", "detail": short(str(down), 200)}
                    return JSONResponse(body, 503), "store_unavailable"
            return failed(event, exc), "failed"
        if outcome is Outcome.BLOCKED:
            return JSONResponse({"status": "blocked", "event_id": str(event.event_id)}, 409), outcome.value
        return JSONResponse({"status": outcome.value, "event_id": str(event.event_id)}, 200), outcome.value

    return router
