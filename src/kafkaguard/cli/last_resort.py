"""Read-only operator queries over ``kafkaguard_last_resort``, and how a record's bytes are shown.

A last-resort row holds a message or outbox row whose normal dead letter the database refused for
its data: bytes, positions and the error only. ``dead-letters list|show|stats --store last-resort``
make such a record findable; nothing here changes one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, literal, select

from kafkaguard.db.tables import last_resort as LR
from kafkaguard.raw_headers import RawHeadersError
from kafkaguard.raw_headers import decode as decode_headers

SUMMARY_COLUMNS = ("id", "store", "status", "consumer_group", "topic", "partition", "offset", "outbox_id",
                   "raw_key", "error", "created_at")  # fmt: skip


@dataclass(frozen=True)
class LastResortFilters:
    """Which last-resort records to read; ``None`` means any."""

    status: str | None = None
    key: str | None = None  # compared with the raw key bytes (UTF-8 of the text given)
    since: datetime | None = None
    until: datetime | None = None
    consumer_group: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.status is not None:
            out.append(LR.c.status == self.status)
        if self.key is not None:
            out.append(LR.c.raw_key == self.key.encode("utf-8", "surrogateescape"))
        if self.since is not None:
            out.append(LR.c.created_at >= self.since)
        if self.until is not None:
            out.append(LR.c.created_at < self.until)
        if self.consumer_group is not None:
            out.append(LR.c.consumer_group == self.consumer_group)
        return out


def list_last_resort(conn: Connection, filters: LastResortFilters, *, limit: int) -> list[dict[str, Any]]:
    """Matching records, oldest first, at most ``limit`` (raw value and headers left out)."""
    q = select(*(LR.c[c] for c in SUMMARY_COLUMNS)).where(*filters.clauses()).order_by(LR.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


def show_last_resort(conn: Connection, record_id: int) -> dict[str, Any] | None:
    """Every column of one record, or None."""
    row = conn.execute(select(LR).where(LR.c.id == record_id)).first()
    return None if row is None else dict(row._mapping)


def stats_last_resort(conn: Connection, filters: LastResortFilters) -> list[dict[str, Any]]:
    """Counts by status, store and the error's first word (its class, as the writers record it)."""
    error_class = func.coalesce(func.nullif(func.split_part(LR.c.error, literal(":"), 1), ""), "-")
    columns = (
        LR.c.status, LR.c.store, error_class.label("error_class"),
        func.count().label("count"), func.min(LR.c.created_at).label("oldest"),
    )  # fmt: skip
    q = (
        select(*columns)
        .where(*filters.clauses())
        .group_by(LR.c.status, LR.c.store, error_class)
        .order_by(func.count().desc(), LR.c.status, LR.c.store)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def _as_bytes(value: Any) -> bytes | None:
    """Bytes of a column that is ``bytea`` (or its hex text, as ``show_record`` returns it)."""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json(data: bytes) -> tuple[bool, Any]:
    """(True, the value) when ``data`` is one JSON document (strict: no NaN/Infinity); else (False, None).

    Outside data: too deep or too large numbers are "not JSON" here, never an error."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    text = _utf8(data)
    if text is None:
        return False, None
    try:
        return True, json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False, None


def with_readable_bytes(row: dict[str, Any], names: tuple[str, ...] = ("raw_key", "raw_value")) -> dict[str, Any]:
    """``row`` with each raw column readable, and ``raw_headers`` decoded into a list of headers
    (each value as text and hex).

    ``raw_value`` holding one JSON document is shown decoded as ``raw_value_json`` (instead of hex);
    other raw columns are hex plus ``<name>_text`` (their UTF-8 text, or null when not UTF-8)."""
    shown = dict(row)
    for name in names:
        data = _as_bytes(shown.get(name))
        if data is None:
            continue
        if name == "raw_value":
            is_json, value = _json(data)
            if is_json:
                del shown[name]
                shown[f"{name}_json"] = value
                continue
        shown[name] = data.hex()
        shown[f"{name}_text"] = _utf8(data)
    raw = _as_bytes(shown.get("raw_headers"))
    if raw is not None:
        shown["raw_headers"] = raw.hex()
        try:
            shown["raw_headers_decoded"] = [_header(name, value) for name, value in decode_headers(raw)]
        except RawHeadersError as exc:
            shown["raw_headers_decoded"] = None
            shown["raw_headers_error"] = str(exc)
    return shown


def _header(name: str, value: bytes | None) -> dict[str, Any]:
    name_bytes = name.encode("utf-8", "surrogateescape")
    header: dict[str, Any] = {
        "name": name_bytes.decode("utf-8", "backslashreplace"),
        "value": None if value is None else _utf8(value),
        "value_hex": None if value is None else value.hex(),
    }
    if _utf8(name_bytes) is None:
        header["name_hex"] = name_bytes.hex()
    return header
