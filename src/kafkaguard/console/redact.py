"""Hide configured payload and header fields before a page shows them (pure).

A field whose name is in ``console.redact_fields`` (compared case-insensitively) keeps its name and
loses its value, at any depth of objects and lists; text that is not JSON is shown as it is,
since there are no field names to match in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"


def redact(value: Any, fields: Iterable[str]) -> Any:
    """A copy of ``value`` with the values of ``fields`` replaced by :data:`REDACTED`."""
    names = {f.lower() for f in fields}
    if not names:
        return value
    return _walk(value, names)


def _walk(value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in names else _walk(v, names)) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, names) for v in value]
    return value
