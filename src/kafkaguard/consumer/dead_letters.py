"""Rows of ``kafka_listener_dead_letters`` and ``kafkaguard_last_resort`` built from a record and a failure (pure).

A row keeps everything needed to understand and replay the message: position, raw key, value and
headers (``raw_headers``: exact bytes), decoded identity when known, error class, message and stack,
attempts and history. Every text and JSON value built from the message goes through
:mod:`kafkaguard.db.safe_text`, so PostgreSQL never refuses a row for what the message contains;
the exact bytes are in the ``bytea`` columns.
"""

from __future__ import annotations

import traceback
from typing import Any

from kafkaguard import raw_headers
from kafkaguard.consumer.records import Record
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.history import history_entry
from kafkaguard.db.safe_text import bytes_text, pg_json, pg_text, pg_text_or_none
from kafkaguard.envelope import Event
from kafkaguard.policies.classify import qualified_name

MAX_ERROR_MESSAGE = 10_000
MAX_STACK = 50_000


def key_text(record: Record, event: Event | None) -> str | None:
    """The record's ordering key as text, or ``None`` when it has none that is a valid event key
    (missing, empty, not UTF-8, or with a NUL): such a record blocks and is blocked by no key."""
    if event is not None:
        return event.key
    if not record.key:
        return None
    try:
        text = record.key.decode()
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def headers_json(record: Record) -> dict[str, str]:
    """Headers as a readable JSON object (bytes escaped where not UTF-8, NUL escaped; a repeated name
    keeps its last value); ``raw_headers`` holds the exact bytes."""
    return {pg_text(name): (bytes_text(raw) or "") if raw is not None else "" for name, raw in record.headers}


def dead_letter_row(
    group: str,
    record: Record,
    *,
    reason: str,
    event: Event | None,
    exc: BaseException | None,
    attempts: int,
    status: DeadLetterStatus = DeadLetterStatus.PENDING,
) -> dict[str, Any]:
    """The row for ``record`` in ``group``: ``pending`` (a failure) or ``parked`` (behind its key's head)."""
    stack = "".join(traceback.format_exception(exc))[-MAX_STACK:] if exc is not None else None
    return {
        "consumer_group": group,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": key_text(record, event),
        "raw_key": record.key,
        "headers": headers_json(record),
        # None when the client could not read the headers: an empty encoding would claim there were none.
        "raw_headers": raw_headers.encode(record.headers) if record.read_error is None else None,
        "raw_value": record.value,
        "event_id": event.event_id if event is not None else None,
        "type": pg_text_or_none(event.type) if event is not None else None,
        "reason": reason,
        "error_class": qualified_name(type(exc)) if exc is not None else None,
        "error_message": pg_text(str(exc)[:MAX_ERROR_MESSAGE]) if exc is not None else None,
        "stack": pg_text_or_none(stack),
        "status": status.value,
        "attempts": attempts,
        "history": [pg_json(history_entry(status.value, exc, reason=reason, attempts=attempts))],
    }


def ascii_error(exc: BaseException, limit: int = 4000) -> str:
    """``exc`` as ASCII text that no database refuses (for the last-resort store)."""
    return ascii(f"{qualified_name(type(exc))}: {exc}")[:limit]


def last_resort_row(
    group: str, record: Record, *, reason: str, failure: BaseException, why_refused: BaseException
) -> dict[str, Any]:
    """The ``kafkaguard_last_resort`` row of ``record``: bytes, numbers and ASCII only.

    ``failure``: what made the record a dead letter; ``why_refused``: the error that refused its
    normal dead-letter row.
    """
    error = f"reason={reason}; failure={ascii_error(failure)}; normal dead letter refused: {ascii_error(why_refused)}"
    return {
        "store": "listener",
        "consumer_group": group,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "raw_key": record.key,
        "raw_value": record.value,
        "raw_headers": raw_headers.encode(record.headers) if record.read_error is None else None,
        "error": error,
    }
