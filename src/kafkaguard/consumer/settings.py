"""Settings of a consumer worker; times in seconds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_DEPTH
from kafkaguard.policies.classify import ErrorClassifier
from kafkaguard.policies.retry import RetryPolicy, in_process_policy


class ConsumerSettings(BaseModel):
    """How a consumer group reads, applies, retries and dead-letters."""

    model_config = ConfigDict(frozen=True)

    group_id: str = Field(default="kafkaguard", description="Kafka consumer group; also the inbox's dedupe scope")
    topics: tuple[str, ...] = Field(default=(), description="topics to read (a worker needs at least one)")
    instance_id: str | None = Field(
        default=None,
        description="group.instance.id (static membership, opt-in): a consumer restarted with the same id takes "
        "its partitions back at once instead of waiting up to session.timeout.ms for a rebalance; unique per "
        "running consumer (a second one with the same id fences the first), stable across its restarts (a "
        "StatefulSet pod name); a static member does not leave the group on shutdown, so its partitions wait "
        "for its return or its session timeout",
    )
    retry: RetryPolicy = Field(default_factory=in_process_policy, description="in-process retries before a dead letter")
    classifier: ErrorClassifier = Field(default_factory=ErrorClassifier)
    dlq_topic: bool = Field(default=False, description="also copy dead letters to <topic>.dlq")
    max_payload_bytes: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES, gt=0, description="larger values are dead letters 'oversized'"
    )
    max_payload_depth: int = Field(
        default=DEFAULT_MAX_PAYLOAD_DEPTH, gt=0, le=900, description="deeper JSON nesting is a dead letter 'too_deep'"
    )
    dead_letter_id_conflicts: bool = Field(
        default=True,
        description="an event id seen before with different content is dead-lettered 'id_conflict' (else only "
        "counted and logged, and skipped)",
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="most messages applied in one database transaction (chunk mode): the worker takes what one "
        "poll already returned, never waiting for more, so a quiet topic still gets one transaction per message; "
        "a message that fails (undecodable, unknown type, id conflict, handler error) is isolated and retried "
        "or dead-lettered alone while the rest of its chunk is applied in chunks again; handlers of a chunk "
        "that was rolled back run again (database effects stay exactly-once). 1 = a transaction per event",
    )
    poll_timeout: float = Field(default=0.5, gt=0, description="longest wait of one poll for messages")
    store_backoff_max: float = Field(default=10.0, gt=0, description="longest pause while PostgreSQL is down")
