"""UUIDv7 event ids: unique, and sortable by creation time (RFC 9562, section 5.7)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last = [0, 0]  # (unix ms, 12-bit counter) of the previous id, so ids made in one ms still sort


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7: 48-bit Unix milliseconds, a 12-bit counter within the ms, 62 random bits.

    Thread-safe; ids made by one process are strictly increasing.
    """
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last[0]:
            ms, counter = _last[0], _last[1] + 1
            if counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms, counter = ms + 1, 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # random start, headroom to grow
        _last[0], _last[1] = ms, counter
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)
