"""Settings of a consumer worker; times in seconds."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_BYTES, DEFAULT_MAX_PAYLOAD_DEPTH
from kafkaguard.http_signing import DEFAULT_REPLAY_WINDOW, HttpAuth, RequestAuth, request_auth
from kafkaguard.policies.classify import ErrorClassifier
from kafkaguard.policies.retry import RetryPolicy, in_process_policy, over_default


class GroupProtocol(StrEnum):
    """Kafka's consumer group protocol (``group.protocol``)."""

    CLASSIC = "classic"  # client-side assignment, eager rebalances (every member stops)
    CONSUMER = "consumer"  # KIP-848: broker-side assignment, incremental rebalances (Kafka 4.0+)


class ConsumerSettings(BaseModel):
    """How a consumer group reads, applies, retries and dead-letters."""

    model_config = ConfigDict(frozen=True)

    @field_validator("retry", mode="before")
    @classmethod
    def _retry_over_its_default(cls, value: Any) -> Any:
        return over_default(in_process_policy(), value)

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
    group_protocol: GroupProtocol = Field(
        default=GroupProtocol.CLASSIC,
        description="group.protocol: classic (client-side assignment, eager rebalances in which every member stops "
        "reading) or consumer (KIP-848, Kafka 4.0+: the broker assigns, a rebalance moves only the partitions "
        "that change owner; the session timeout is the broker's group.consumer.session.timeout.ms, and "
        "session.timeout.ms, heartbeat.interval.ms, partition.assignment.strategy and group.protocol.type in "
        "consumer_client are refused)",
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

    # The receiving endpoint of ``http`` mode (kafkaguard.consumer.http); read by receiving_router only.
    http_auth: HttpAuth = Field(
        default=HttpAuth.HMAC,
        description="how the http receiving endpoint authenticates requests: hmac (X-Kafkaguard-Signature), "
        "bearer (Authorization: Bearer), or none (explicit opt-out: anyone reaching it can apply events)",
    )
    http_secrets: tuple[SecretStr, ...] = Field(
        default=(), description="hmac: accepted shared secrets (several during a rotation), at least 16 characters"
    )
    http_secret_files: tuple[Path, ...] = Field(
        default=(),
        description="hmac: files holding one secret each (mounted Kubernetes Secrets), instead of http_secrets",
    )
    http_tokens: tuple[SecretStr, ...] = Field(
        default=(), description="bearer: accepted tokens (several during a rotation)"
    )
    http_token_files: tuple[Path, ...] = Field(
        default=(), description="bearer: files holding one token each, instead of http_tokens"
    )
    http_replay_window: float = Field(
        default=DEFAULT_REPLAY_WINDOW, gt=0, description="hmac: a signature timestamp further from now is refused"
    )

    def http_request_auth(self) -> RequestAuth:
        """The receiving endpoint's credentials (files read now); ConfigurationError when none are set."""
        return request_auth(
            self.http_auth,
            secrets=self.http_secrets,
            secret_files=self.http_secret_files,
            tokens=self.http_tokens,
            token_files=self.http_token_files,
            replay_window=self.http_replay_window,
            prefix="consumer.http",
        )
