"""An event's content digest: tells a duplicate (same id, same content) from an id conflict (pure).

The inbox keeps the digest of the event it applied. A later message with the same ``event_id``
is a duplicate only if its digest is the same; otherwise two different events claim one id (a
producer bug, or a forged message), which must not be silently skipped.

The digest covers ``type``, ``key`` and the payload as canonical JSON (sorted keys, compact), not
the Kafka bytes: the same event legitimately arrives with different bytes (the outbox relay sends
PostgreSQL's rendering of the payload, the direct mode Python's, a restored publisher dead letter
PostgreSQL's again). Headers and ``occurred_at`` are left out for the same reason.
"""

from __future__ import annotations

import hashlib
import json

from kafkaguard.envelope import Event

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
"""The canonical JSON form, built once (``json.dumps`` with these options builds an encoder per call)."""


def content_hash(event: Event) -> bytes:
    """SHA-256 of ``event``'s type, key and canonical payload (32 bytes)."""
    canonical = _CANONICAL.encode([event.type, event.key, event.payload])
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest()
