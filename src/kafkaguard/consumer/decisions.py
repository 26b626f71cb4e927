"""Pure decisions of the consumer: what follows a failure, which offsets to commit or rewind.

No I/O here; the worker and the applier carry the answers out (table-tested in
``tests/unit/test_consumer_decisions.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from enum import StrEnum

from kafkaguard.consumer.records import Record
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.errors import PayloadValidationError
from kafkaguard.policies.retry import GiveUp, Retry, RetryPolicy, next_step

UNKNOWN_TYPE = "unknown_type"
HANDLER_ERROR = "handler_error"
PARKED = "parked"
ID_CONFLICT = "id_conflict"
INTERNAL_ERROR = "internal_error"
INVALID_PAYLOAD = "invalid_payload"
"""Listener dead-letter reasons besides :class:`~kafkaguard.errors.DecodeReason`'s values."""


class Outcome(StrEnum):
    """What became of one message; every outcome is durable before its offset is committed."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"
    DEAD_LETTERED = "dead_lettered"
    IGNORED = "ignored"
    ID_CONFLICT = "id_conflict"  # same event id, different content: dead-lettered (default) or skipped, never applied
    BLOCKED = "blocked"  # HTTP only: the key has an open dead letter; nothing stored, sender retries later


def after_failure(
    attempt: int,
    exc: BaseException,
    settings: ConsumerSettings,
    rng: random.Random | None = None,
    policy: RetryPolicy | None = None,
) -> Retry | GiveUp:
    """Retry (with the policy's delay) or give up after failed attempt ``attempt`` (from 1).

    ``policy``: the handler's own retry policy (``register(..., retry=...)``), else the group's.
    """
    return next_step(attempt, settings.classifier.is_retriable(exc), policy or settings.retry, rng)


def failure_reason(exc: BaseException) -> str:
    """The dead-letter reason of a failed handler call: ``invalid_payload`` when a typed handler's
    model refused the payload, else ``handler_error``."""
    return INVALID_PAYLOAD if isinstance(exc, PayloadValidationError) else HANDLER_ERROR


def rewind_positions(records: Iterable[Record]) -> dict[tuple[str, int], int]:
    """The lowest offset per partition among ``records``: where to seek so none is skipped."""
    out: dict[tuple[str, int], int] = {}
    for r in records:
        out[r.tp] = min(out.get(r.tp, r.offset), r.offset)
    return out


class OffsetTracker:
    """Next offsets to commit per partition, advanced only for records whose outcome is durable.

    Not thread-safe: the worker's poll thread owns it (the revoke callback runs in that thread).
    """

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], int] = {}

    def done(self, record: Record) -> None:
        """``record``'s effect or dead letter is durable: its successor may be committed."""
        nxt = record.offset + 1
        if nxt > self._pending.get(record.tp, -1):
            self._pending[record.tp] = nxt

    def pending(self, only: Iterable[tuple[str, int]] | None = None) -> dict[tuple[str, int], int]:
        """Offsets not yet committed (all partitions, or those in ``only``)."""
        if only is None:
            return dict(self._pending)
        keep = set(only)
        return {tp: o for tp, o in self._pending.items() if tp in keep}

    def committed(self, offsets: dict[tuple[str, int], int]) -> None:
        """Forget offsets that the broker stored (unless a later one was tracked meanwhile)."""
        for tp, o in offsets.items():
            if self._pending.get(tp) == o:
                del self._pending[tp]

    def forget(self, tps: Iterable[tuple[str, int]]) -> None:
        """Drop partitions that are no longer ours."""
        for tp in tps:
            self._pending.pop(tp, None)
