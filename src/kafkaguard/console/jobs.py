"""Bulk actions in the background: progress an operator can watch and a cancel that stops before the next key.

A retry or redrive of a group or a selection runs in a thread of its own once it is checked
(:func:`kafkaguard.console.actions.plan_retry`); its page (``/jobs/<id>``) shows how many records
were processed and offers Cancel. Two jobs over the same records never process one twice: each key
is restored under the restore jobs' per-key lock, and a record restored meanwhile is no longer
reset. Jobs live in the app (no module state), the last :data:`KEPT` of them.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kafkaguard.console.actions import Result, RetryPlan, run_retry

log = logging.getLogger("kafkaguard.console")
KEPT = 100


@dataclass
class Progress:
    """A running job's counters (written by its thread, read by pages) and its cancel flag."""

    total: int
    done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def advance(self, records: int) -> None:
        self.done += records

    def cancelled(self) -> bool:
        return self.cancel.is_set()


@dataclass
class Job:
    """One bulk action: what, by whom, its progress, and its result once finished."""

    id: str
    action: str
    store: str
    actor: str
    progress: Progress
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    result: Result | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)


class Jobs:
    """The console's jobs, by id (thread-safe)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, action: str, actor: str, plan: RetryPlan, on_end: Callable[[Job], None]) -> Job:
        """Run ``plan`` in a thread; ``on_end(job)`` (the audit row) runs before the job shows as finished."""
        job = Job(secrets.token_hex(8), action, plan.store.value, actor, Progress(plan.total))
        with self._lock:
            self._jobs[job.id] = job
            for old in [j for j in self._jobs.values() if j.finished.is_set()][: max(0, len(self._jobs) - KEPT)]:
                del self._jobs[old.id]

        def work() -> None:
            try:
                job.result = run_retry(plan, job.progress)
            except Exception as exc:  # a job reports its failure on its page; it never kills the app
                log.exception("console job %s (%s) failed", job.id, action)
                job.error = f"{type(exc).__name__}: the action stopped; see the console's log"
            finally:
                try:
                    on_end(job)
                finally:
                    job.finished.set()

        threading.Thread(target=work, name=f"console-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)
