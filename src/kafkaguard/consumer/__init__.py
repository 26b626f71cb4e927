"""The consumer: at-least-once delivery from Kafka with exactly-once effects in the database.

Register handlers (per event, or per run of events with ``register_batch``) on a
:class:`HandlerRegistry`, run them with :class:`Worker` (or
``kafkaguard consume module:registry``), restore dead letters with :func:`restore_key`, and
receive ``http`` publish mode with :func:`kafkaguard.consumer.http.receiving_router`.
"""

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry, Position
from kafkaguard.consumer.restore import (
    RestoreResult,
    due_keys,
    restore_key,
    restore_key_async,
    retry_dead_letter,
    retry_dead_letter_async,
)
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
