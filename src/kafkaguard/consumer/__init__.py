"""The consumer: at-least-once delivery from Kafka with exactly-once effects in the database.

Register handlers (per event, or per run of events with ``register_batch``) on a
:class:`HandlerRegistry`, run them with :class:`Worker` (or
``kafkaguard consume module:registry``), restore dead letters with :func:`restore_key` (from
:mod:`kafkaguard.restore.listener_functions`, forwarded here on first use), and
receive ``http`` publish mode with :func:`kafkaguard.consumer.http.receiving_router`.
"""

from typing import Any

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry, Position
from kafkaguard.consumer.restore import forward
from kafkaguard.consumer.source import MemorySource, MessageSource
from kafkaguard.consumer.worker import Worker

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


def __getattr__(name: str) -> Any:
    """The restore functions, imported on first use: they live in :mod:`kafkaguard.restore` (which
    depends on this package, so a static import here would be a cycle)."""
    value = forward(name, __name__)
    globals()[name] = value
    return value
