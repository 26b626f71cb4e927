"""Where :func:`restore_key`, :func:`retry_dead_letter`, their async forms, :func:`due_keys` and
:class:`RestoreResult` used to live; they are :mod:`kafkaguard.restore.listener_functions` now
(restore depends on the consumer, never the other way). Names are forwarded on first use, so old
imports keep working without an import of ``kafkaguard.restore`` from the consumer package.
"""

from __future__ import annotations

import importlib
from typing import Any

MOVED = frozenset(
    ("RestoreResult", "due_keys", "restore_key", "restore_key_async", "retry_dead_letter", "retry_dead_letter_async")
)


def forward(name: str, module: str = __name__) -> Any:
    """The moved ``name`` from :mod:`kafkaguard.restore.listener_functions` (``AttributeError`` for
    any other name, naming ``module``)."""
    if name not in MOVED:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return getattr(importlib.import_module("kafkaguard.restore.listener_functions"), name)


def __getattr__(name: str) -> Any:
    """Forward a moved name (see :func:`forward`)."""
    return forward(name)
