"""Retry or dead-letter: the one decision every failure path makes.

``next_step(attempt, retriable, policy)`` returns :class:`Retry` with the delay before the next
attempt, or :class:`GiveUp` with the reason, and does nothing else; the consumer loop, the
background publisher and the restore jobs carry the answer out.

Options of :class:`RetryPolicy`:
- ``max_attempts`` (int, default 5): attempts in all, the first included; ``1`` means no retry.
- ``backoff`` (default fixed 3600 s, the order note's retrier): see :mod:`kafkaguard.policies.backoff`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.policies.backoff import Backoff, Exponential, Fixed


class RetryPolicy(BaseModel):
    """How many attempts in all, and how long to wait between them."""

    model_config = ConfigDict(frozen=True)
    max_attempts: int = Field(default=5, ge=1, description="attempts in all, the first included; 1 = no retry")
    backoff: Backoff = Field(default_factory=Fixed)


def in_process_policy() -> RetryPolicy:
    """The default for retries inside a running worker: 3 attempts, 0.2 s doubling, at most 5 s."""
    return RetryPolicy(max_attempts=3, backoff=Exponential(base=0.2, factor=2, max_seconds=5, jitter=0.2))


@dataclass(frozen=True)
class Retry:
    """Try again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True)
class GiveUp:
    """Stop retrying; ``reason`` is ``"permanent"`` (not retriable) or ``"exhausted"``."""

    reason: str


def next_step(attempt: int, retriable: bool, policy: RetryPolicy, rng: random.Random | None = None) -> Retry | GiveUp:
    """Decide what follows failed attempt number ``attempt`` (counted from 1)."""
    if not retriable:
        return GiveUp("permanent")
    if attempt >= policy.max_attempts:
        return GiveUp("exhausted")
    return Retry(policy.backoff.delay(attempt, rng))
