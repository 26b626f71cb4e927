"""``http`` mode's pure rules: which endpoint receives an event, and what an answer means.

Response contract (shared with the receiving side): **2xx** = applied or duplicate (done);
**4xx** = refused for good (dead-letter at once); **5xx** or an I/O error = retry, then dead-letter.
"""

from __future__ import annotations

from enum import Enum

from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from kafkaguard.publisher.settings import PublishSettings


class Verdict(Enum):
    """What to do after one HTTP attempt."""

    DONE = "done"
    RETRY = "retry"
    REJECTED = "rejected"


def endpoint_for(settings: PublishSettings, event: Event) -> str:
    """The URL for ``event``: by event type, then aggregate type, then the default endpoint."""
    url = (
        settings.http_endpoints.get(event.type)
        or settings.http_endpoints.get(event.aggregate_type)
        or settings.http_default_endpoint
    )
    if not url:
        raise ConfigurationError(
            f"no HTTP endpoint for event type {event.type!r} (aggregate {event.aggregate_type!r}); "
            "set publish.http_endpoints or publish.http_default_endpoint"
        )
    return url


def verdict(status: int | None, attempt: int, retries: int) -> Verdict:
    """Decide after attempt ``attempt`` (from 1); ``status`` None means an I/O error (no answer)."""
    if status is not None and 200 <= status < 300:
        return Verdict.DONE
    if status is not None and 400 <= status < 500:
        return Verdict.REJECTED
    return Verdict.RETRY if attempt <= retries else Verdict.REJECTED


def retry_delay(attempt: int) -> float:
    """Seconds before the next attempt: 0.2, 0.4, 0.8, ... at most 2 s."""
    return float(min(2.0, 0.2 * 2 ** (attempt - 1)))
