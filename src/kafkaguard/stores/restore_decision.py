"""The new state of a dead-letter record after one restore attempt, as both dead-letter stores write it.

:mod:`kafkaguard.restore.outcome` decides it (pure); the publisher store
(:mod:`kafkaguard.stores.publisher_dead_letters`) and the listener store
(:mod:`kafkaguard.stores.listener_dead_letters`) store it. It lives here, below both, because
the stores may not import the restore component that decides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafkaguard.db.columns import DeadLetterStatus


@dataclass(frozen=True)
class RestoreDecision:
    """A record's new state after one restore attempt.

    ``status``: ``restored``, ``pending`` (try again at ``next_attempt_at``) or ``failed`` (attempts
    exhausted: parked for an operator). ``attempts``: tries so far, this one included.
    ``history_entry``: appended to the record's history. ``restored_by``: how it was restored
    (restored records only). ``error_class`` (qualified), ``error_message``, ``stack``: the failure
    (failed attempts only; already cut to what the columns keep).
    """

    status: DeadLetterStatus
    attempts: int
    next_attempt_at: datetime
    history_entry: dict[str, Any]
    restored_by: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    stack: str | None = None

    def listener_columns(self, now: Any) -> dict[str, Any]:
        """The ``kafka_listener_dead_letters`` columns this decision sets, ``now`` the time written
        (``func.now()`` in SQL, a datetime in the fake); ``history`` is appended by the store."""
        values: dict[str, Any] = {"status": self.status.value, "attempts": self.attempts, "updated_at": now}
        if self.status is DeadLetterStatus.RESTORED:
            values.update(restored_at=now, restored_by=self.restored_by)
        else:
            values.update(
                next_attempt_at=self.next_attempt_at,
                error_class=self.error_class,
                error_message=self.error_message,
                stack=self.stack,
            )
        return values
