"""The consumer: at-least-once delivery from Kafka with exactly-once effects in the database.

Register handlers (per event, or per run of events with ``register_batch``) on a
:class:`HandlerRegistry`, run them with :class:`Worker` (or
``kafkaguard consume module:registry``), restore dead letters with :func:`restore_key` (from
:mod:`kafkaguard.restore.listener_functions`), and receive ``http`` publish mode with
:func:`kafkaguard.consumer.http.receiving_router`.

This package imports nothing on ``import``: every name below is imported on first use. So
importing one of its modules (``kafkaguard.consumer.settings``, which ``kafkaguard.settings``
assembles) never loads the worker, the stores or the restore component; and the restore
functions, which depend on this package, are reached without an import cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkaguard.consumer.apply import Applier
    from kafkaguard.consumer.decisions import Outcome
    from kafkaguard.consumer.records import Record
    from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry, Position
    from kafkaguard.consumer.source import MemorySource, MessageSource
    from kafkaguard.consumer.worker import Worker
    from kafkaguard.restore.listener_functions import (
        RestoreResult,
        due_keys,
        restore_key,
        restore_key_async,
        retry_dead_letter,
        retry_dead_letter_async,
    )

__all__ = [
    "Applier",
    "BatchContext",
    "HandlerContext",
    "HandlerRegistry",
    "MemorySource",
    "MessageSource",
    "Outcome",
    "Position",
    "Record",
    "RestoreResult",
    "Worker",
    "due_keys",
    "restore_key",
    "restore_key_async",
    "retry_dead_letter",
    "retry_dead_letter_async",
]

_RESTORE = "kafkaguard.restore.listener_functions"
# Public name -> the module it is imported from on first use (keep the TYPE_CHECKING block in step).
_LAZY: dict[str, str] = {
    "Applier": "kafkaguard.consumer.apply",
    "Outcome": "kafkaguard.consumer.decisions",
    "Record": "kafkaguard.consumer.records",
    "BatchContext": "kafkaguard.consumer.registry",
    "HandlerContext": "kafkaguard.consumer.registry",
    "HandlerRegistry": "kafkaguard.consumer.registry",
    "Position": "kafkaguard.consumer.registry",
    "MemorySource": "kafkaguard.consumer.source",
    "MessageSource": "kafkaguard.consumer.source",
    "Worker": "kafkaguard.consumer.worker",
    **dict.fromkeys(
        [
            "RestoreResult",
            "due_keys",
            "restore_key",
            "restore_key_async",
            "retry_dead_letter",
            "retry_dead_letter_async",
        ],
        _RESTORE,
    ),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module, so the next lookup is a plain one."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
