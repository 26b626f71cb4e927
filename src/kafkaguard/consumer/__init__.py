"""The consumer: at-least-once delivery from Kafka with exactly-once effects in the database.

Register handlers on a :class:`HandlerRegistry`, run them with :class:`Worker` (or
``kafkaguard consume module:registry``), restore dead letters with :func:`restore_key`, and
receive ``http`` publish mode with :func:`kafkaguard.consumer.http.receiving_router`.
"""

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.consumer.restore import RestoreResult, due_keys, restore_key, retry_dead_letter
from kafkaguard.consumer.source import MemorySource, MessageSource
from kafkaguard.consumer.worker import Worker

__all__ = [
    "Applier",
    "HandlerContext",
    "HandlerRegistry",
    "MemorySource",
    "MessageSource",
    "Outcome",
    "Record",
    "RestoreResult",
    "Worker",
    "due_keys",
    "restore_key",
    "retry_dead_letter",
]
