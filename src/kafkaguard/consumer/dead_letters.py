"""Rows of ``kafka_listener_dead_letters`` built from a record and a failure (pure).

A row keeps everything needed to understand and replay the message: position, raw key, value and
headers, decoded identity when known, error class, message and stack, attempts and history.
"""

from __future__ import annotations

import traceback
from typing import Any

from kafkaguard.consumer.records import Record
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.history import history_entry
from kafkaguard.envelope import Event
from kafkaguard.policies.classify import qualified_name


def key_text(record: Record, event: Event | None) -> str | None:
    """The record's ordering key as text (``None`` when missing or not UTF-8)."""
    if event is not None:
        return event.key
    if not record.key:
        return None
    try:
        return record.key.decode()
    except UnicodeDecodeError:
        return None


def headers_json(record: Record) -> dict[str, str]:
    """Headers as a JSON object; non-UTF-8 bytes are kept backslash-escaped (raw_value is verbatim)."""
    return {name: (raw.decode("utf-8", "backslashreplace") if raw is not None else "") for name, raw in record.headers}


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
    stack = "".join(traceback.format_exception(exc)) if exc is not None else None
    return {
        "consumer_group": group,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": key_text(record, event),
        "raw_key": record.key,
        "headers": headers_json(record),
        "raw_value": record.value,
        "event_id": event.event_id if event is not None else None,
        "type": event.type if event is not None else None,
        "reason": reason,
        "error_class": qualified_name(type(exc)) if exc is not None else None,
        "error_message": str(exc)[:10_000] if exc is not None else None,
        "stack": stack,
        "status": status.value,
        "attempts": attempts,
        "history": [history_entry(status.value, exc, reason=reason, attempts=attempts)],
    }
