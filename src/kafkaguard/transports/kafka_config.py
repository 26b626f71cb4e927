"""Client settings for confluent-kafka that do not lose or duplicate by default.

Each safety-relevant setting is set explicitly (DESIGN.md, "Kafka defaults that lose or
duplicate"); callers pass extra librdkafka settings through one mapping that wins over these.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAFE_PRODUCER: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    "retries": 2_147_483_647,
    "compression.type": "lz4",
    "linger.ms": 5,
}

SAFE_CONSUMER: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
}


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return the idempotent ``acks=all`` producer settings for ``bootstrap`` plus ``overrides``."""
    return {"bootstrap.servers": bootstrap, **SAFE_PRODUCER, **extra, **(overrides or {})}


def consumer_config(
    bootstrap: str, group_id: str, overrides: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Return manual-commit, ``read_committed``, ``earliest`` consumer settings plus ``overrides``."""
    return {"bootstrap.servers": bootstrap, "group.id": group_id, **SAFE_CONSUMER, **extra, **(overrides or {})}
