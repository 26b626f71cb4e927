"""Log lines as JSON documents (``--log-format json``), with the event a line concerns.

Each line is one JSON object: ``time``, ``level``, ``logger``, ``message`` and, when the line is
about one event, ``event_id``, ``key``, ``topic``, ``partition``, ``offset``, ``trace_id`` and
``span_id``. The event comes from :func:`about` — the consumer, the HTTP receiver and the restore
jobs bind the message they are working on — and the ids from the current span, else from the
event's own ``traceparent`` header (so lines carry the trace id even without an SDK). Fields are
worked out only when a line is written: binding costs one context-variable set per event.

Total: a line is written whatever the message, its arguments or the bound event hold (bytes that
are not UTF-8, an exception whose ``str`` raises): the formatter never raises.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kafkaguard.logtext import short
from kafkaguard.tracing.context import current_ids, ids_from

_KEY_LIMIT = 200


class LogFormat(StrEnum):
    """How worker commands write their log lines."""

    TEXT = "text"
    JSON = "json"


_about: contextvars.ContextVar[Any] = contextvars.ContextVar("kafkaguard_log_about", default=None)


def bind(subject: Any) -> contextvars.Token[Any]:
    """:func:`about` without a context manager, for hot paths: pass the token to :func:`unbind`."""
    return _about.set(subject)


def unbind(token: contextvars.Token[Any]) -> None:
    """End what :func:`bind` began."""
    _about.reset(token)


@contextmanager
def about(subject: Any) -> Iterator[None]:
    """Log lines inside the block concern ``subject``: a Kafka record (``topic``, ``partition``,
    ``offset``, raw ``key`` and ``headers``) or an event (``event_id``, ``key``, ``headers``)."""
    token = _about.set(subject)
    try:
        yield
    finally:
        _about.reset(token)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return short(bytes(value).decode("utf-8", "replace"), _KEY_LIMIT)
    return short(str(value), _KEY_LIMIT)


def _header(headers: Any, name: str) -> Any:
    if isinstance(headers, dict):
        return headers.get(name)
    try:
        for k, v in headers or ():
            if k == name:
                return v
    except (TypeError, ValueError):
        return None
    return None


def subject_fields(subject: Any) -> dict[str, Any]:
    """The fields of a bound record or event (empty for anything else)."""
    if subject is None:
        return {}
    out: dict[str, Any] = {}
    headers = getattr(subject, "headers", None)
    event_id = getattr(subject, "event_id", None)
    if event_id is None:
        event_id = _header(headers, "event_id")
    if event_id is not None:
        out["event_id"] = _text(event_id)
    key = getattr(subject, "key", None)
    if key is not None:
        out["key"] = _text(key)
    for name in ("topic", "partition", "offset"):
        value = getattr(subject, name, None)
        if value is not None:
            out[name] = value
    ids = ids_from(headers)
    if ids is not None:
        out["trace_id"], out["span_id"] = ids
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per log record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            return json.dumps(self._fields(record), ensure_ascii=False, default=str)
        except Exception as exc:  # noqa: BLE001 - a log line must never fail
            return json.dumps({"level": "ERROR", "logger": "kafkaguard.log_json", "message": f"unloggable: {exc!r}"})

    def _fields(self, record: logging.LogRecord) -> dict[str, Any]:
        try:
            message = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - a bad format string or argument
            message = f"{record.msg!r} (arguments did not format: {exc!r})"
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        out.update(subject_fields(_about.get()))
        for name in ("event_id", "key", "topic", "partition", "offset"):
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        ids = current_ids()  # the span the line was written in: the same trace, a nearer span
        if ids is not None:
            out["trace_id"], out["span_id"] = ids
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return out


def configure(level: str, fmt: LogFormat, text_format: str) -> None:
    """Root logging at ``level`` to stderr, as JSON or as ``text_format`` lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else logging.Formatter(text_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
