"""Make outside text storable in PostgreSQL (pure).

PostgreSQL refuses two things Python strings can hold: a NUL character in ``text`` and ``\\u0000``
(or an unpaired surrogate) in ``jsonb``. Every text column and every JSON document that is built
from outside data (keys, types, header values, error messages, stacks) goes through these helpers
first, so a dead letter is never refused because of what it describes. The exact bytes are kept
beside the text in ``bytea`` columns; the text form is for reading and searching only.

The escape is visible, not silent: NUL becomes the four characters ``\\x00`` and an unpaired
surrogate its ``\\udXXX`` escape.
"""

from __future__ import annotations

from typing import Any


def pg_text(value: str) -> str:
    """``value`` with NUL and unpaired surrogates escaped, so PostgreSQL ``text`` accepts it."""
    if "\x00" in value:
        value = value.replace("\x00", "\\x00")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def pg_text_or_none(value: str | None) -> str | None:
    """:func:`pg_text` that passes ``None`` through."""
    return None if value is None else pg_text(value)


def pg_json(value: Any) -> Any:
    """A copy of the JSON-like ``value`` whose strings (keys included) :func:`pg_text` made storable in ``jsonb``."""
    if isinstance(value, str):
        return pg_text(value)
    if isinstance(value, dict):
        return {pg_text(str(k)): pg_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pg_json(v) for v in value]
    return value


def bytes_text(raw: bytes | None) -> str | None:
    """Bytes from outside as storable text: UTF-8 where it is, ``\\xNN`` escapes where not, NUL escaped."""
    if raw is None:
        return None
    return pg_text(raw.decode("utf-8", "backslashreplace"))
