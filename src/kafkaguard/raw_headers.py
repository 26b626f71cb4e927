"""Kafka headers as one exact byte string, and back (pure).

A dead letter keeps its message's headers in ``raw_headers`` (``bytea``) so that restore and replay
send back exactly the bytes that arrived: repeated names, empty and ``None`` values and values that
are not UTF-8 included. ``headers`` (``jsonb``) beside it is a readable copy only.

Format (version 1): ``b"KGH1"``, then per header in order: name length (4 bytes, big-endian), the
name as UTF-8, value length (4 bytes, big-endian, signed; ``-1`` for a ``None`` value), the value.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

MAGIC = b"KGH1"
_LEN = struct.Struct(">i")

Headers = list[tuple[str, bytes | None]]


class RawHeadersError(ValueError):
    """The bytes are not an encoding made by :func:`encode`."""


def encode(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """``headers`` (name, value) in order as one byte string."""
    parts = [MAGIC]
    for name, value in headers:
        name_bytes = name.encode("utf-8", "surrogateescape")
        parts.append(_LEN.pack(len(name_bytes)))
        parts.append(name_bytes)
        if value is None:
            parts.append(_LEN.pack(-1))
        else:
            parts.append(_LEN.pack(len(value)))
            parts.append(value)
    return b"".join(parts)


def decode(data: bytes) -> Headers:
    """The headers :func:`encode` wrote; raise :class:`RawHeadersError` on anything else."""
    if not data.startswith(MAGIC):
        raise RawHeadersError("raw headers do not start with the KGH1 marker")
    out: Headers = []
    pos, end = len(MAGIC), len(data)
    try:
        while pos < end:
            (n,) = _LEN.unpack_from(data, pos)
            pos += 4
            if n < 0 or pos + n > end:
                raise RawHeadersError("raw headers: a name runs past the end")
            name = data[pos : pos + n].decode("utf-8", "surrogateescape")
            pos += n
            (m,) = _LEN.unpack_from(data, pos)
            pos += 4
            if m == -1:
                out.append((name, None))
                continue
            if m < 0 or pos + m > end:
                raise RawHeadersError("raw headers: a value runs past the end")
            out.append((name, bytes(data[pos : pos + m])))
            pos += m
    except struct.error as exc:
        raise RawHeadersError(f"raw headers are cut short: {exc}") from exc
    return out
