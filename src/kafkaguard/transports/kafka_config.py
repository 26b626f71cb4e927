"""Client settings for confluent-kafka that do not lose or duplicate by default.

Each safety-relevant setting is set explicitly (DESIGN.md, "Kafka defaults that lose or
duplicate"); callers pass extra librdkafka settings through one mapping that wins over these.
Every client logs through Python logging, rate-limited (:mod:`.kafka_logging`), unless the caller
installs its own ``logger`` / ``error_cb``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kafkaguard.transports.kafka_logging import client_logging

SAFE_PRODUCER: Mapping[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "max.in.flight.requests.per.connection": 5,
    "retries": 2_147_483_647,
    "compression.type": "lz4",
    "linger.ms": 5,
    # A key must land on the same partition whoever produces it: Debezium, Kafka Connect and every
    # Java client hash keys with murmur2, librdkafka's default (consistent_random) with CRC32. With
    # the default, an aggregate's events from kafkaguard's relay and from Debezium (or a Java
    # service) go to different partitions and their order is lost (found when one stream moved
    # from one relay to the other). murmur2_random is murmur2 for keyed messages, as in Java.
    "partitioner": "murmur2_random",
}

SAFE_CONSUMER: Mapping[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "auto.offset.reset": "earliest",
    "isolation.level": "read_committed",
}

BOUNDED_CONSUMER_MEMORY: Mapping[str, Any] = {
    # librdkafka pre-fetches into a local queue until it holds queued.min.messages per partition
    # (default 100,000) or queued.max.messages.kbytes (default 64 MiB): with a backlog, a worker
    # that applies a few thousand events/s holds tens of MiB of messages it will not reach for
    # seconds, and its RSS grows with the backlog (116 -> 223 MB from 10k to 1M rows). These
    # bounds keep a few chunks of 500 per partition read ahead (at 20,000 events/s of 400 B, 2 MiB
    # is ~250 ms of work, and a loopback fetch takes milliseconds) and measured flat RSS from a 10k
    # to a 300k backlog (121 -> 122 MB, with kafkaguard.process_memory's trim; 16 MiB gave 145 MB)
    # at the same rate. fetch.max.bytes (default 50 MiB) bounds one fetch response; it stays above
    # message.max.bytes (1 MB), and a larger first message is still returned (KIP-74).
    "queued.min.messages": 2_000,
    "queued.max.messages.kbytes": 2_048,
    "fetch.max.bytes": 1024 * 1024,
}


def producer_config(bootstrap: str, overrides: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return the idempotent ``acks=all`` producer settings for ``bootstrap`` plus ``overrides``."""
    logging_settings = {} if "logger" in extra else client_logging(bootstrap, "producer", config=overrides)[1]
    return {"bootstrap.servers": bootstrap, **SAFE_PRODUCER, **logging_settings, **extra, **(overrides or {})}


def consumer_config(
    bootstrap: str, group_id: str, overrides: Mapping[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """Return manual-commit, ``read_committed``, ``earliest`` consumer settings with a bounded
    pre-fetch queue (:data:`BOUNDED_CONSUMER_MEMORY`), logging through Python (:mod:`.kafka_logging`),
    plus ``extra`` and ``overrides``, which win."""
    logging_settings = {} if "logger" in extra else client_logging(bootstrap, "consumer", config=overrides)[1]
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        **SAFE_CONSUMER,
        **BOUNDED_CONSUMER_MEMORY,
        **logging_settings,
        **extra,
        **(overrides or {}),
    }
