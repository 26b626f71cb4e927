"""What the relay does with a round's delivery outcomes (pure; table-tested without Kafka).

Rows of one key are walked in ``seq`` order:

- acknowledged → remove (or mark) the row;
- transient failure (Kafka down, timeout) → stop this key for the round: the row and every later
  row of the key stay in the outbox and are published again next round (nothing is dead-lettered
  for an outage);
- rejected (too large, not authorised, not serialisable) → dead-letter the row; with
  ``block_key`` later rows of the key stay behind it (they are skipped by the claim while the dead
  letter is open); without, the walk goes on.

A row acknowledged after an earlier row of its key failed is left in the outbox, so it is published
again after the earlier one: consumers dedupe by event id, and a stale copy never overtakes.

Rows without a key (empty ``aggregateid``: never an event, always rejected) have no order to keep:
they neither stop nor wait for anything.

``stopped`` carries keys that failed in the previous round of a pipelined relay (a round produced
while the previous one was still in flight): their rows in this round are treated as coming after
a failure. ``RoundPlan.stopped`` is the set to carry into the next round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, TypeVar


class RowOutcome(Enum):
    """What became of one outbox row in a round: how the broker answered for it."""

    ACKED = "acked"
    TRANSIENT = "transient"
    REJECTED = "rejected"


R = TypeVar("R")


@dataclass
class RoundPlan(Generic[R]):
    """The rows to remove, the rows to dead-letter, and acknowledged rows kept for a later republish."""

    remove: list[R] = field(default_factory=list)
    dead_letter: list[R] = field(default_factory=list)
    kept_after_failure: list[R] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)


def plan_round(
    rows: Sequence[tuple[str, R, RowOutcome]],
    *,
    block_key: bool,
    stopped: Iterable[str] = (),
) -> RoundPlan[R]:
    """Decide per row from ``(key, row, outcome)`` triples given in ``seq`` order."""
    plan: RoundPlan[R] = RoundPlan(stopped=set(stopped))
    halted = plan.stopped
    for key, row, outcome in rows:
        if key in halted:
            if outcome is RowOutcome.ACKED:
                plan.kept_after_failure.append(row)
            continue
        if outcome is RowOutcome.ACKED:
            plan.remove.append(row)
        elif outcome is RowOutcome.REJECTED:
            plan.dead_letter.append(row)
            if block_key and key:
                halted.add(key)
        elif key:
            halted.add(key)
    return plan
