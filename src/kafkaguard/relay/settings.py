"""Settings of the outbox relay; times in seconds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH
from kafkaguard.topics import RelayKind as RelayKind  # its home before it moved down a layer


class RelaySettings(BaseModel):
    """How the relay claims, publishes and removes outbox rows."""

    model_config = ConfigDict(frozen=True)

    kind: RelayKind = Field(
        default=RelayKind.KAFKAGUARD,
        description="debezium: outbox writes insert-then-delete and `kafkaguard relay` refuses to run",
    )
    batch_size: int = Field(default=500, ge=1, le=50_000, description="rows claimed per round")
    poll_interval: float = Field(default=1.0, gt=0, description="fallback poll when no NOTIFY arrives")
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "relay processes `kafkaguard relay` starts on this host (they share the shards like separate"
            " instances; more than one lifts the one-GIL limit, see docs/concepts/relay.md)"
        ),
    )
    delivery_timeout: float = Field(default=30.0, gt=0, description="broker ack budget per batch")
    max_backoff: float = Field(default=10.0, gt=0, description="longest pause while Kafka or the DB is down")
    delete_published: bool = Field(
        default=True, description="delete rows once acknowledged; False marks published_at (cleanup deletes later)"
    )
    published_retention: float = Field(
        default=3600.0, ge=0, description="with delete_published=False, marked rows older than this are deleted"
    )
    block_key_on_dead_letter: bool = Field(
        default=True, description="later events of a key wait while it has an open publisher dead letter"
    )
    max_payload_depth: int = Field(
        default=DEFAULT_MAX_PAYLOAD_DEPTH,
        ge=1,
        le=10_000,
        description=(
            "deepest nesting of arrays/objects in a row's payload or headers (levels); a deeper row is a"
            " publisher dead letter 'too_deep' (checked without decoding; consumers bound it the same way)"
        ),
    )
