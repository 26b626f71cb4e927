"""Backoff schedules: how long to wait before attempt ``n + 1`` after attempt ``n`` failed.

Three shapes, all pure and table-testable (``rng`` is passed in for jitter):

- ``fixed``: always ``seconds``. The order note's retrier: 3600 s.
- ``exponential``: ``base * factor ** (attempt - 1)``, capped at ``max_seconds``; with ``jitter``
  (0..1) the delay is drawn uniformly from ``[d * (1 - jitter), d]`` so that many failing records
  do not retry in lock step.
- ``schedule``: an explicit list of delays; the last one repeats.

Attempts are counted from 1 (the first attempt that failed).
"""

from __future__ import annotations

import random
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Fixed(BaseModel):
    """Wait the same number of seconds after every failed attempt."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["fixed"] = Field(default="fixed", description="selects this schedule")
    seconds: float = Field(default=3600.0, ge=0, description="wait after every failed attempt")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return self.seconds


class Exponential(BaseModel):
    """Grow the wait by ``factor`` per attempt from ``base`` seconds up to ``max_seconds``."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["exponential"] = Field(default="exponential", description="selects this schedule")
    base: float = Field(default=1.0, gt=0, description="wait after the first failed attempt")
    factor: float = Field(default=2.0, ge=1, description="growth of the wait per attempt")
    max_seconds: float = Field(default=3600.0, gt=0, description="longest wait")
    jitter: float = Field(default=0.2, ge=0, le=1, description="fraction of the wait drawn at random (0 = none)")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        raw = min(self.max_seconds, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter == 0:
            return raw
        draw = (rng or random.Random()).random()  # noqa: S311 - jitter, not security
        return raw * (1 - self.jitter * draw)


class Schedule(BaseModel):
    """Wait ``seconds[attempt - 1]``; the last entry repeats once the list runs out."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["schedule"] = Field(default="schedule", description="selects this schedule")
    seconds: tuple[float, ...] = Field(
        default=(60.0, 300.0, 1800.0, 3600.0), description="wait after attempt n; the last repeats"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> Schedule:
        if not self.seconds or any(s < 0 for s in self.seconds):
            raise ValueError("a backoff schedule needs at least one delay, none negative")
        return self

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        return self.seconds[min(len(self.seconds), max(1, attempt)) - 1]


Backoff = Annotated[Fixed | Exponential | Schedule, Field(discriminator="kind")]
