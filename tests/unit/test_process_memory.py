"""The freed-memory trimmer: at most one malloc_trim per interval, none where libc lacks it."""

from __future__ import annotations

from kafkaguard.process_memory import FreedMemoryTrimmer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_trims_at_most_once_per_interval() -> None:
    clock = Clock()
    trimmer = FreedMemoryTrimmer(every=1.0, clock=clock)
    calls: list[int] = []
    trimmer._trim = lambda pad: calls.append(pad) or 1  # record instead of trimming
    for _ in range(5):
        trimmer()
    assert calls == []  # the interval starts at construction
    clock.now += 1.0
    trimmer()
    trimmer()
    clock.now += 0.5
    trimmer()
    assert calls == [0]
    clock.now += 0.5
    trimmer()
    assert calls == [0, 0] and trimmer.trims == 2


def test_does_nothing_without_malloc_trim() -> None:
    clock = Clock()
    trimmer = FreedMemoryTrimmer(every=0.0, clock=clock)
    trimmer._trim = None
    clock.now += 5
    trimmer()
    assert trimmer.trims == 0 and not trimmer.available


def test_real_trim_runs_here() -> None:
    trimmer = FreedMemoryTrimmer(every=0.0)
    assert trimmer.available  # this project's machines run glibc (Debian)
    trimmer()
    assert trimmer.trims == 1
