"""One shape for the entries of a dead letter's ``history`` (both stores, every writer).

    {"at": ISO time, "what": "dead_lettered" | "parked" | "pending" | "restored" | "restore_failed"
                             | "replay" | "discard" | "handoff",
     "attempts": n?, "by": how?, "error_class": ...?, "error_message": ...?, ...}

An operator reading ``kafkaguard dead-letters show`` sees one vocabulary whichever path wrote it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kafkaguard.policies.classify import qualified_name

MAX_MESSAGE = 2000


def history_entry(what: str, error: BaseException | None = None, **extra: Any) -> dict[str, Any]:
    """An entry saying ``what`` happened now, with the error's class and message when given."""
    entry: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "what": what}
    if "attempt" in extra:  # one spelling in every store: older callers pass ``attempt``
        extra["attempts"] = extra.pop("attempt")
    entry.update({k: v for k, v in extra.items() if v is not None})
    if error is not None:
        entry["error_class"] = qualified_name(type(error))
        entry["error_message"] = str(error)[:MAX_MESSAGE]
    return entry
