"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.

``import kafkaguard`` is cheap: the errors are imported at once, every other public name on first
use (``from kafkaguard import Worker`` imports the consumer then). So a process that only needs,
say, the outbox writers never imports the HTTP, metrics or CLI libraries, and
:func:`receiving_router` is the one name that needs the ``http`` extra (FastAPI):
``pip install 'kafkaguard[http]'``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kafkaguard.errors import (
    ConfigurationError,
    ConsumerError,
    DeadLetterNotFoundError,
    DeliveryTimeoutError,
    DevStackError,
    EventRejectedError,
    KafkaguardError,
    KafkaUnavailableError,
    PortInUseError,
    PublishError,
    PublishUnavailableError,
    SchemaNotReadyError,
    StartTimeoutError,
    StoreUnavailableError,
    ToolMissingError,
    UnknownEventTypeError,
)

if TYPE_CHECKING:
    from kafkaguard.consumer import (
        BatchContext,
        HandlerContext,
        HandlerRegistry,
        Outcome,
        RestoreResult,
        Worker,
        due_keys,
        restore_key,
        restore_key_async,
        retry_dead_letter,
        retry_dead_letter_async,
    )
    from kafkaguard.consumer.http import receiving_router
    from kafkaguard.db.engine import create_async_engine, create_engine
    from kafkaguard.envelope import Event
    from kafkaguard.publisher.facade import Publisher, PublishOutcome
    from kafkaguard.publisher.outbox import add_event, add_event_async, add_events, add_events_async
    from kafkaguard.publisher.settings import PublishMode
    from kafkaguard.relay.worker import Relay

__version__ = "0.1.0"

__all__ = [
    "BatchContext",
    "ConfigurationError",
    "ConsumerError",
    "DeadLetterNotFoundError",
    "DeliveryTimeoutError",
    "DevStackError",
    "Event",
    "EventRejectedError",
    "HandlerContext",
    "HandlerRegistry",
    "KafkaUnavailableError",
    "KafkaguardError",
    "Outcome",
    "PortInUseError",
    "PublishError",
    "PublishMode",
    "PublishOutcome",
    "PublishUnavailableError",
    "Publisher",
    "Relay",
    "RestoreResult",
    "SchemaNotReadyError",
    "StartTimeoutError",
    "StoreUnavailableError",
    "ToolMissingError",
    "UnknownEventTypeError",
    "Worker",
    "__version__",
    "add_event",
    "add_event_async",
    "add_events",
    "add_events_async",
    "create_async_engine",
    "create_engine",
    "due_keys",
    "receiving_router",
    "restore_key",
    "restore_key_async",
    "retry_dead_letter",
    "retry_dead_letter_async",
]

# Public name -> the module it is imported from on first use (keep the TYPE_CHECKING block in step).
_LAZY: dict[str, str] = {
    "BatchContext": "kafkaguard.consumer",
    "HandlerContext": "kafkaguard.consumer",
    "HandlerRegistry": "kafkaguard.consumer",
    "Outcome": "kafkaguard.consumer",
    "RestoreResult": "kafkaguard.consumer",
    "Worker": "kafkaguard.consumer",
    "due_keys": "kafkaguard.consumer",
    "restore_key": "kafkaguard.consumer",
    "retry_dead_letter": "kafkaguard.consumer",
    "restore_key_async": "kafkaguard.consumer",
    "retry_dead_letter_async": "kafkaguard.consumer",
    "create_engine": "kafkaguard.db.engine",
    "create_async_engine": "kafkaguard.db.engine",
    "receiving_router": "kafkaguard.consumer.http",
    "Event": "kafkaguard.envelope",
    "Publisher": "kafkaguard.publisher.facade",
    "PublishOutcome": "kafkaguard.publisher.facade",
    "add_event": "kafkaguard.publisher.outbox",
    "add_event_async": "kafkaguard.publisher.outbox",
    "add_events": "kafkaguard.publisher.outbox",
    "add_events_async": "kafkaguard.publisher.outbox",
    "PublishMode": "kafkaguard.publisher.settings",
    "Relay": "kafkaguard.relay.worker",
}

# Libraries that only the ``http`` extra installs; a missing one gets a hint instead of a bare ModuleNotFoundError.
_HTTP_EXTRA = frozenset({"fastapi", "starlette", "uvicorn"})


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module, so the next lookup is a plain one."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kafkaguard' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.partition(".")[0] in _HTTP_EXTRA:
            raise ImportError(
                f"kafkaguard.{name} needs {exc.name}, which is not installed: pip install 'kafkaguard[http]'",
                name=exc.name,
            ) from exc
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
