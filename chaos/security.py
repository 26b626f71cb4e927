"""The TLS/SASL client settings of the chaos tools' own Kafka clients, from ``KAFKAGUARD_KAFKA_SECURITY__*``.

The workers a run starts read the same variables through their settings, so every client of a run
(workers, injections, invariant checks) connects the same way; unset, nothing is added.
"""

from __future__ import annotations

import os
from typing import Any

from kafkaguard.kafka_security import from_environ


def client_security() -> dict[str, Any]:
    """librdkafka settings of :class:`~kafkaguard.kafka_security.KafkaSecurity` from the environment."""
    return from_environ(os.environ).client_config()
