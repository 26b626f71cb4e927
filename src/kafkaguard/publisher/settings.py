"""Settings of the publishing side: which mode each event uses, and each mode's budget.

Mode lookup (most specific wins): ``modes_by_type['post.created']``, then
``modes_by_aggregate['post']``, then ``default_mode``. This is dailyfeed's
``publish-type.post-service: kafka | feign`` generalised per event type.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kafkaguard.http_signing import HttpAuth, RequestAuth, request_auth
from kafkaguard.policies.backoff import Exponential
from kafkaguard.policies.retry import RetryPolicy, over_default


class PublishMode(StrEnum):
    """How an event leaves the writing service; each mode's guarantee is in docs/concepts/publish-modes.md."""

    OUTBOX = "outbox"
    DIRECT = "direct"
    BACKGROUND = "background"
    HTTP = "http"


def background_policy() -> RetryPolicy:
    """The default of ``background_retry``: 3 attempts, 0.5 s doubling, at most 10 s."""
    return RetryPolicy(max_attempts=3, backoff=Exponential(base=0.5, factor=2, max_seconds=10, jitter=0.2))


class PublishSettings(BaseModel):
    """Publishing settings; times in seconds."""

    model_config = ConfigDict(frozen=True)

    default_mode: PublishMode = Field(default=PublishMode.OUTBOX, description="mode of an event no other rule names")
    modes_by_type: dict[str, PublishMode] = Field(default_factory=dict, description="event type -> mode (wins)")
    modes_by_aggregate: dict[str, PublishMode] = Field(default_factory=dict, description="aggregate type -> mode")

    direct_timeout: float = Field(default=5.0, gt=0, description="time budget for the broker's ack in direct mode")
    hold_key_behind_dead_letters: bool = Field(
        default=True,
        description="direct/http: an event whose key has an open publisher dead letter is stored behind it "
        "(the restore job delivers them in order) instead of overtaking it",
    )

    background_retry: RetryPolicy = Field(
        default_factory=background_policy,
        description="attempts before the DLQ topic, then the dead-letter table",
    )

    @field_validator("background_retry", mode="before")
    @classmethod
    def _retry_over_its_default(cls, value: Any) -> Any:
        return over_default(background_policy(), value)

    background_timeout: float = Field(default=10.0, gt=0, description="per-attempt delivery timeout")

    http_endpoints: dict[str, str] = Field(
        default_factory=dict, description="aggregate type (or event type) -> receiving URL for http mode"
    )
    http_default_endpoint: str | None = Field(default=None, description="receiving URL when http_endpoints names none")
    http_timeout: float = Field(default=5.0, gt=0, description="per-request timeout of http mode")
    http_retries: int = Field(default=2, ge=0, description="retries after the first attempt, on 5xx and I/O errors")
    http_auth: HttpAuth = Field(
        default=HttpAuth.HMAC,
        description="how http mode authenticates its requests: hmac (signs with the first of http_secrets), "
        "bearer (sends the first of http_tokens), or none (explicit opt-out)",
    )
    http_secrets: tuple[SecretStr, ...] = Field(
        default=(), description="hmac: shared secrets, the first signs (the receiver may accept more)"
    )
    http_secret_files: tuple[Path, ...] = Field(
        default=(),
        description="hmac: files holding one secret each (mounted Kubernetes Secrets), instead of http_secrets",
    )
    http_tokens: tuple[SecretStr, ...] = Field(default=(), description="bearer: tokens, the first is sent")
    http_token_files: tuple[Path, ...] = Field(
        default=(), description="bearer: files holding one token each, instead of http_tokens"
    )

    def mode_for(self, event_type: str, aggregate_type: str) -> PublishMode:
        """The mode for an event: by type, then by aggregate type, then the default."""
        return self.modes_by_type.get(event_type) or self.modes_by_aggregate.get(aggregate_type) or self.default_mode

    def uses_http(self) -> bool:
        """Whether any rule sends events in ``http`` mode."""
        modes = {self.default_mode, *self.modes_by_type.values(), *self.modes_by_aggregate.values()}
        return PublishMode.HTTP in modes

    def http_request_auth(self) -> RequestAuth:
        """http mode's credentials (files read now); ConfigurationError when none are set."""
        return request_auth(
            self.http_auth,
            secrets=self.http_secrets,
            secret_files=self.http_secret_files,
            tokens=self.http_tokens,
            token_files=self.http_token_files,
            prefix="publish.http",
        )
