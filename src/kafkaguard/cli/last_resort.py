"""How ``dead-letters list|show|stats`` shows a record's raw bytes (key, value, headers) readably.

Used for last-resort records above all (bytes, positions and the error only, read by
:mod:`kafkaguard.stores.last_resort`); pure, nothing here reads or changes a record.
"""

from __future__ import annotations

import json
from typing import Any

from kafkaguard.raw_headers import RawHeadersError
from kafkaguard.raw_headers import decode as decode_headers


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
