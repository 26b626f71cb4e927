"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.
"""

from kafkaguard.consumer import (
    BatchContext,
    HandlerContext,
    HandlerRegistry,
    Outcome,
    RestoreResult,
    Worker,
    due_keys,
    restore_key,
    retry_dead_letter,
)
from kafkaguard.consumer.http import receiving_router
from kafkaguard.envelope import Event
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
    StartTimeoutError,
    StoreUnavailableError,
    ToolMissingError,
    UnknownEventTypeError,
)
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
    "due_keys",
    "receiving_router",
    "restore_key",
    "retry_dead_letter",
]
