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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kafkaguard.policies.backoff import Backoff, Exponential, Fixed


class RetryPolicy(BaseModel):
    """How many attempts in all, and how long to wait between them."""

    model_config = ConfigDict(frozen=True)
    max_attempts: int = Field(default=5, ge=1, description="attempts in all, the first included; 1 = no retry")
    backoff: Backoff = Field(default_factory=Fixed)


def over_default(default: RetryPolicy, value: Any) -> Any:
    """``value`` (settings input for a retry policy) with what it leaves out taken from ``default``.

    For a settings field whose default is not :class:`RetryPolicy`'s own: a partial value
    (``KAFKAGUARD_CONSUMER__RETRY__MAX_ATTEMPTS=2``, a TOML table with one key) changes only what it
    names. Without it the rest came from the class defaults (a fixed hour between attempts, meant
    for restore jobs). A backoff of another ``kind`` replaces the default's whole."""
    if not isinstance(value, Mapping):
        return value
    base = default.model_dump(mode="json")
    merged = {**base, **value}
    backoff = value.get("backoff")
    if isinstance(backoff, Mapping) and backoff.get("kind", base["backoff"]["kind"]) == base["backoff"]["kind"]:
        merged["backoff"] = {**base["backoff"], **backoff}
    return merged


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
