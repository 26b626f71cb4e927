"""Where :func:`restore_key`, :func:`retry_dead_letter`, their async forms, :func:`due_keys` and
:class:`RestoreResult` used to live; they are :mod:`kafkaguard.restore.listener_functions` now
(restore depends on the consumer, never the other way). Names are forwarded on first use, so old
imports keep working without an import of ``kafkaguard.restore`` from the consumer package.
"""

from __future__ import annotations

import importlib
from typing import Any

_MOVED = (
    "RestoreResult",
    "due_keys",
    "restore_key",
    "restore_key_async",
    "retry_dead_letter",
    "retry_dead_letter_async",
)


def __getattr__(name: str) -> Any:
    """Forward a moved name to :mod:`kafkaguard.restore.listener_functions`."""
    if name not in _MOVED:
        raise AttributeError(f"module 'kafkaguard.consumer.restore' has no attribute {name!r}")
    return getattr(importlib.import_module("kafkaguard.restore.listener_functions"), name)
