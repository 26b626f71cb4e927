"""Shared helpers of the consumer unit tests over the in-memory store (no Kafka, no PostgreSQL)."""

from __future__ import annotations

import threading
from typing import Any

from kafkaguard.consumer import Applier, HandlerRegistry, Record
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing import MemoryConsumerStore

GROUP = "g"


def settings(**extra: Any) -> ConsumerSettings:
    """Group ``g``, three in-process attempts without waiting (default classifier: TimeoutError
    retriable, ValueError permanent)."""
    base: dict[str, Any] = {
        "group_id": GROUP,
        "retry": RetryPolicy(max_attempts=3, backoff=Fixed(seconds=0)),
    }
    return ConsumerSettings(**{**base, **extra})


def record(event: Event, offset: int, *, partition: int = 0, topic: str = "t") -> Record:
    """``event`` as the Kafka message the relay would send."""
    headers = [
        (k, v if isinstance(v, bytes) else (v.encode() if v is not None else None)) for k, v in event.kafka_headers()
    ]
    return Record(topic, partition, offset, event.key.encode(), event.payload_bytes(), headers)


def applier(store: MemoryConsumerStore, registry: HandlerRegistry, **extra: Any) -> Applier:
    return Applier(store, registry, settings(**extra), stop=threading.Event())
