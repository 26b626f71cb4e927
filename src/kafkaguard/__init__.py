"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.
"""

from kafkaguard.consumer import (
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
from kafkaguard.errors import (
    ConfigurationError,
    ConsumerError,
    DeadLetterNotFoundError,
    DeliveryTimeoutError,
    DevStackError,
    KafkaguardError,
    PortInUseError,
    PublishError,
    StartTimeoutError,
    StoreUnavailableError,
    ToolMissingError,
    UnknownEventTypeError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "ConsumerError",
    "DeadLetterNotFoundError",
    "DeliveryTimeoutError",
    "DevStackError",
    "HandlerContext",
    "HandlerRegistry",
    "KafkaguardError",
    "Outcome",
    "PortInUseError",
    "PublishError",
    "RestoreResult",
    "StartTimeoutError",
    "StoreUnavailableError",
    "ToolMissingError",
    "UnknownEventTypeError",
    "Worker",
    "__version__",
    "due_keys",
    "receiving_router",
    "restore_key",
    "retry_dead_letter",
]
