"""The workload plan: which key each write goes to, its per-key sequence, and which writes roll back.

The plan is a pure function of ``(seed, events, keys, rollback_rate)``, so a failing run is
re-run exactly with the same seed. Keys are written sequentially by one writer (the next write of
a key starts after the previous one's transaction ended), which makes the expected per-key order
unambiguous. A rolled-back write still consumes its sequence number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """Write number ``i``: key, that key's sequence number (from 1), and whether it rolls back."""

    i: int
    key: str
    seq: int
    rollback: bool


def plan(seed: int, events: int, *, keys: int = 50, rollback_rate: float = 0.05) -> list[Step]:
    """The ``events`` writes of a run (deterministic for a seed)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible workload, not security
    counters: dict[str, int] = {}
    steps: list[Step] = []
    for i in range(events):
        key = f"k{rng.randrange(keys):03d}"
        counters[key] = counters.get(key, 0) + 1
        steps.append(Step(i, key, counters[key], rng.random() < rollback_rate))
    return steps
