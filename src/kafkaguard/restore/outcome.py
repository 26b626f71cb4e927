"""What a restore attempt's result does to a dead-letter record (pure).

Success → ``restored`` (when, how). Failure → ``attempts + 1``, next attempt by the policy's
backoff, the last error, a history entry; once attempts are exhausted → ``failed`` (parked for an
operator, who can ``replay`` it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.history import history_entry
from kafkaguard.policies.retry import GiveUp, RetryPolicy, next_step


@dataclass(frozen=True)
class Outcome:
    """The record's new state after one restore attempt."""

    status: DeadLetterStatus
    attempts: int
    next_attempt_at: datetime
    history_entry: dict[str, Any]


def after_success(attempts: int, now: datetime, how: str) -> Outcome:
    """The record was restored by ``how`` (``republish``, ``handoff``, ``handler``)."""
    entry = history_entry("restored", attempt=attempts + 1, by=how)
    return Outcome(DeadLetterStatus.RESTORED, attempts + 1, now, entry)


def after_failure(attempts: int, error: BaseException, policy: RetryPolicy, now: datetime, how: str) -> Outcome:
    """The attempt number ``attempts + 1`` failed with ``error``."""
    attempt = attempts + 1
    step = next_step(attempt, True, policy)
    entry = history_entry("restore_failed", error, attempt=attempt, by=how)
    if isinstance(step, GiveUp):
        return Outcome(DeadLetterStatus.FAILED, attempt, now, entry)
    return Outcome(DeadLetterStatus.PENDING, attempt, now + timedelta(seconds=step.delay), entry)
