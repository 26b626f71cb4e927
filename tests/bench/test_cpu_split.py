"""bench.cpu_split: the CPU of the process being profiled lands in its group, and the box's counters move."""

from __future__ import annotations

import os
import time

from bench import cpu_split


def _spin(seconds: float) -> int:
    """Busy work for ``seconds`` of wall time (the thing being measured, not a wait)."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        count += 1
    return count


def test_the_profiled_process_is_the_relay_group_and_the_box_saw_it() -> None:
    before = cpu_split.snapshot()
    started = time.monotonic()
    assert _spin(0.4) > 0
    after = cpu_split.snapshot()
    shares = cpu_split.split(before, after, time.monotonic() - started, relay_pid=os.getpid())
    assert shares["relay"] > 0.5  # this process spun for the whole interval
    assert shares["box"] >= shares["relay"] - 0.1  # the box counts at least what this process did
    assert set(shares) == {"relay", "postgres", "kafka", "other", "box", "steal"}
    top = cpu_split.busiest(before, after, time.monotonic() - started)
    assert any(name.endswith(f"[{os.getpid()}]") for name, _ in top)


def test_groups_by_ancestry_then_by_name() -> None:
    parents = {10: 1, 11: 10, 12: 11, 20: 1, 30: 1}
    assert cpu_split._group(12, "python", parents, relay_pid=10) == "relay"  # a grandchild of the relay
    assert cpu_split._group(20, "postgres", parents, relay_pid=10) == "postgres"
    assert cpu_split._group(30, "java", parents, relay_pid=10) == "kafka"
    assert cpu_split._group(31, "kworker/0:1", parents, relay_pid=10) == "other"
