"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.
"""

from kafkaguard.envelope import Event
from kafkaguard.errors import (
    ConfigurationError,
    DeliveryTimeoutError,
    DevStackError,
    EventRejectedError,
    KafkaguardError,
    KafkaUnavailableError,
    PortInUseError,
    PublishError,
    PublishUnavailableError,
    StartTimeoutError,
    ToolMissingError,
)
from kafkaguard.publisher.facade import Publisher, PublishOutcome
from kafkaguard.publisher.outbox import add_event, add_event_async, add_events, add_events_async
from kafkaguard.publisher.settings import PublishMode
from kafkaguard.relay.worker import Relay

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DeliveryTimeoutError",
    "DevStackError",
    "Event",
    "EventRejectedError",
    "KafkaUnavailableError",
    "KafkaguardError",
    "PortInUseError",
    "PublishError",
    "PublishMode",
    "PublishOutcome",
    "PublishUnavailableError",
    "Publisher",
    "Relay",
    "StartTimeoutError",
    "ToolMissingError",
    "__version__",
    "add_event",
    "add_event_async",
    "add_events",
    "add_events_async",
]
