"""What a restore attempt's result does to a dead-letter record (pure).

Success → ``restored`` (when, how). Failure → ``attempts + 1``, next attempt by the policy's
backoff, the last error, a history entry; once attempts are exhausted → ``failed`` (parked for an
operator, who can ``replay`` it). Both restore jobs decide through these two functions.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta

from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.history import history_entry
from kafkaguard.db.safe_text import pg_text
from kafkaguard.policies.classify import qualified_name
from kafkaguard.policies.retry import GiveUp, RetryPolicy, next_step
from kafkaguard.stores.restore_decision import RestoreDecision

MAX_ERROR_MESSAGE = 10_000
"""Characters of the error message a record keeps."""
MAX_STACK = 50_000
"""Characters of the stack a record keeps (the end, where the raise is)."""


def after_success(attempts: int, now: datetime, how: str) -> RestoreDecision:
    """The record was restored by ``how`` (``republish``, ``handoff``, ``handler``)."""
    entry = history_entry("restored", attempts=attempts + 1, by=how)
    return RestoreDecision(DeadLetterStatus.RESTORED, attempts + 1, now, entry, restored_by=how)


def after_failure(attempts: int, error: BaseException, policy: RetryPolicy, now: datetime, how: str) -> RestoreDecision:
    """The attempt number ``attempts + 1`` failed with ``error``."""
    attempt = attempts + 1
    step = next_step(attempt, True, policy)
    entry = history_entry("restore_failed", error, attempts=attempt, by=how)
    status, next_at = (
        (DeadLetterStatus.FAILED, now)
        if isinstance(step, GiveUp)
        else (DeadLetterStatus.PENDING, now + timedelta(seconds=step.delay))
    )
    return RestoreDecision(
        status,
        attempt,
        next_at,
        entry,
        error_class=qualified_name(type(error)),
        error_message=pg_text(str(error)[:MAX_ERROR_MESSAGE]),
        stack=pg_text("".join(traceback.format_exception(error))[-MAX_STACK:]),
    )
