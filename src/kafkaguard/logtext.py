"""Outside values as they appear in log lines: bounded and printable (pure).

A 1 MB key must not be written to the log three times, and a NUL or an escape sequence in a key
must not reach a terminal: :func:`short` keeps the first ``limit`` characters of ``repr``-like
text and says how much was cut.
"""

from __future__ import annotations

DEFAULT_LIMIT = 120


def short(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` for a log line: bytes and text escaped, at most ``limit`` characters plus a note of the cut."""
    if value is None:
        return "-"
    if isinstance(value, bytes):
        text = value[: limit * 4].decode("utf-8", "backslashreplace")
        total = len(value)
        unit = "bytes"
    else:
        text = value if isinstance(value, str) else str(value)
        total = len(text)
        unit = "chars"
    text = text[: limit * 4].encode("unicode_escape").decode("ascii")
    if len(text) <= limit and total <= limit * 4:
        return text
    return f"{text[:limit]}…({total} {unit})"
