"""FastAPI helpers: turn :class:`~kafkaguard.errors.PublishUnavailableError` into HTTP 503.

    app = FastAPI()
    install_exception_handlers(app)

The body says what happened and carries the event id; ``Retry-After`` invites the client to try
again (the business write was rolled back, so a retry is safe). The detail is kafkaguard's own
message, truncated and escaped (:func:`kafkaguard.logtext.short`): a delivery error quoting outside
text can neither flood the body nor make it unencodable.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kafkaguard.errors import PublishUnavailableError
from kafkaguard.logtext import short

RETRY_AFTER_SECONDS = 5
DETAIL_LIMIT = 300  # characters of the error's message in the body


async def publish_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    """503 with ``{"error": "publish_unavailable", "detail": ..., "event_id": ...}``."""
    event_id = exc.event_id if isinstance(exc, PublishUnavailableError) else None
    return JSONResponse(
        status_code=503,
        content={"error": "publish_unavailable", "detail": short(str(exc), DETAIL_LIMIT), "event_id": event_id},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_exception_handlers(app: FastAPI) -> None:
    """Register kafkaguard's handlers on ``app``."""
    app.add_exception_handler(PublishUnavailableError, publish_unavailable_handler)
