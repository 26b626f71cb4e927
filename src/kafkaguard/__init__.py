"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.
"""

from kafkaguard.errors import (
    ConfigurationError,
    DeliveryTimeoutError,
    DevStackError,
    KafkaguardError,
    PortInUseError,
    PublishError,
    StartTimeoutError,
    ToolMissingError,
)

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DeliveryTimeoutError",
    "DevStackError",
    "KafkaguardError",
    "PortInUseError",
    "PublishError",
    "StartTimeoutError",
    "ToolMissingError",
    "__version__",
]
