"""OpenTelemetry messaging attribute names, by version of the semantic conventions.

The messaging conventions are still "Development" status and renamed several attributes in 1.27
(``messaging.operation`` → ``messaging.operation.type``, ``messaging.kafka.consumer.group`` →
``messaging.consumer.group.name``, ``messaging.kafka.message.offset`` → ``messaging.kafka.offset``).
``tracing.conventions`` chooses the names kafkaguard writes: ``"1.27"`` (the default; unchanged
through 1.44) or ``"1.24"`` for backends and dashboards built on the older names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ConventionVersion(StrEnum):
    """The semantic-conventions version whose attribute names spans carry."""

    V1_27 = "1.27"
    V1_24 = "1.24"


@dataclass(frozen=True)
class Names:
    """Attribute names of one conventions version (values that did not move are shared)."""

    operation: str
    operation_name: str | None  # 1.27 adds messaging.operation.name beside the type
    consumer_group: str
    offset: str
    # Operation values: 1.24 calls creating and sending both "publish".
    create: str
    send: str
    process: str

    system: str = "messaging.system"
    destination: str = "messaging.destination.name"
    partition: str = "messaging.destination.partition.id"
    message_id: str = "messaging.message.id"
    key: str = "messaging.kafka.message.key"
    batch_count: str = "messaging.batch.message_count"
    tombstone: str = "messaging.kafka.message.tombstone"
    error_type: str = "error.type"


NAMES = {
    ConventionVersion.V1_27: Names(
        operation="messaging.operation.type",
        operation_name="messaging.operation.name",
        consumer_group="messaging.consumer.group.name",
        offset="messaging.kafka.offset",
        create="create",
        send="send",
        process="process",
    ),
    ConventionVersion.V1_24: Names(
        operation="messaging.operation",
        operation_name=None,
        consumer_group="messaging.kafka.consumer.group",
        offset="messaging.kafka.message.offset",
        create="publish",
        send="publish",
        process="process",
    ),
}

# kafkaguard's own attributes (no convention names these).
OUTCOME = "kafkaguard.outcome"
PUBLISH_MODE = "kafkaguard.publish.mode"
EVENT_TYPE = "kafkaguard.event.type"
DEAD_LETTER_ID = "kafkaguard.dead_letter.id"
DEAD_LETTER_STORE = "kafkaguard.dead_letter.store"
