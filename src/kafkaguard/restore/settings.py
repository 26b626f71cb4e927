"""Settings of the restore jobs. Defaults from the order note: 5 attempts, 1 hour apart."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy


class PublisherStrategy(StrEnum):
    """``republish`` to Kafka, or ``handoff`` to the listener store (dailyfeed's batch)."""

    REPUBLISH = "republish"
    HANDOFF = "handoff"


class RestoreSettings(BaseModel):
    """How the restore jobs pick and retry dead letters."""

    model_config = ConfigDict(frozen=True)

    policy: RetryPolicy = Field(default_factory=lambda: RetryPolicy(max_attempts=5, backoff=Fixed(seconds=3600)))
    batch_size: int = Field(default=100, ge=1, description="due keys (and keyless records) taken per run")
    publisher_strategy: PublisherStrategy = Field(
        default=PublisherStrategy.REPUBLISH, description="republish to Kafka, or hand off to the listener store"
    )
    handoff_group: str | None = Field(default=None, description="consumer group that receives handed-off events")
