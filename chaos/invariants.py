"""The four invariants of the chaos suite, as pure functions over rows read from the databases.

- ``lost``: committed business writes whose event was never applied by the consumer;
- ``duplicated``: extra applications (``apply_count - 1`` summed over applied events);
- ``reordered``: applications of a committed event whose per-key sequence number is lower than one
  already applied for that key (the workload writes each key sequentially, so any inversion in the
  projection's application order is an order violation);
- ``phantom``: applied events whose business write never committed (rolled back on purpose, or
  the commit failed after delivery).

Nothing here does I/O: the runner reads the rows, these functions count.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Committed:
    """One committed business write (producer database): its event id, key and per-key sequence."""

    event_id: uuid.UUID
    key: str
    seq: int


@dataclass(frozen=True)
class Applied:
    """One applied event (consumer projection): ``applied_order`` is when it was first applied
    (a database sequence), ``apply_count`` how many times its handler's effect ran."""

    event_id: uuid.UUID
    key: str
    seq: int
    apply_count: int
    applied_order: int


@dataclass(frozen=True)
class Verdict:
    """The counts of one run; all zero is the outbox promise."""

    committed: int
    applied: int
    lost: int
    duplicated: int
    reordered: int
    phantom: int


def lost(committed: Iterable[Committed], applied: Iterable[Applied]) -> int:
    """Committed writes whose event id is absent from the projection."""
    seen = {a.event_id for a in applied}
    return sum(1 for c in committed if c.event_id not in seen)


def duplicated(applied: Iterable[Applied]) -> int:
    """Applications beyond the first, over all events."""
    return sum(max(0, a.apply_count - 1) for a in applied)


def phantom(committed: Iterable[Committed], applied: Iterable[Applied]) -> int:
    """Applied events with no committed business write."""
    ids = {c.event_id for c in committed}
    return sum(1 for a in applied if a.event_id not in ids)


def reordered(committed: Iterable[Committed], applied: Iterable[Applied]) -> int:
    """Applications of committed events that arrived after a higher sequence of the same key.

    Phantoms are left out (their sequence numbers belong to writes that never happened), so this
    counts only inversions among real events.
    """
    ids = {c.event_id for c in committed}
    highest: dict[str, int] = {}
    violations = 0
    for a in sorted((a for a in applied if a.event_id in ids), key=lambda a: a.applied_order):
        top = highest.get(a.key)
        if top is not None and a.seq < top:
            violations += 1
        else:
            highest[a.key] = a.seq
    return violations


def verdict(committed: list[Committed], applied: list[Applied]) -> Verdict:
    """All four counts at once."""
    return Verdict(
        committed=len(committed),
        applied=len(applied),
        lost=lost(committed, applied),
        duplicated=duplicated(applied),
        reordered=reordered(committed, applied),
        phantom=phantom(committed, applied),
    )
