"""Python's cyclic garbage collector set for a worker process's steady loop.

A relay round or a consumer chunk allocates a few container objects per event (rows, messages,
header lists, records) and frees nearly all of them when the batch settles. With Python's default
thresholds (700, 10, 10) that young garbage triggers a collection every few hundred rows, and every
tenth of those walks the older generations: all the objects the process keeps (its imported modules,
SQLAlchemy's and pydantic's tables). Measured in one relay draining 200,000 rows
(``python -m bench.profile relay-phases``): 1,500 young and 12 full collections took 17 % of its wall
time; with the objects of startup frozen and a young threshold of 50,000 it ran none, and drained
61,000-67,000 rows/s instead of 51,000-55,000 (two rounds each, interleaved).

The worker commands (``kafkaguard relay``, ``consume``, ``forward``) call :func:`tune_gc` once,
after startup and before their loop, with the ``gc_threshold`` setting (``KAFKAGUARD_GC_THRESHOLD``;
0 leaves Python's collector as it is). A process that embeds a component decides for itself: the
function is public (``kafkaguard.tune_gc``). Cycles are still collected, later: a young collection
every ``threshold`` net allocations, the older generations after Python's own counts of those.
"""

from __future__ import annotations

import gc

DEFAULT_GC_THRESHOLD = 50_000
"""Net container allocations between two young-generation collections (Python's default: 700)."""

GC_THRESHOLD_MAX = 2**31 - 1
"""The largest threshold ``gc.set_threshold`` takes (a C int; above it raises ``OverflowError``)."""


def tune_gc(threshold: int = DEFAULT_GC_THRESHOLD) -> bool:
    """Collect once, freeze what is alive (startup's objects leave every later collection), then
    collect the young generation every ``threshold`` net allocations. ``threshold`` 0: change
    nothing. Return whether anything was changed. Call it after startup, from the main thread."""
    if not 0 <= threshold <= GC_THRESHOLD_MAX:
        raise ValueError(
            f"gc threshold must be 0 (leave Python's collector alone) to {GC_THRESHOLD_MAX:,}, not {threshold}"
        )
    if threshold == 0:
        return False
    gc.collect()  # startup's own garbage is freed, not frozen for the process's life
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
    return True
