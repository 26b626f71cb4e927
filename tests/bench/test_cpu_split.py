"""bench.cpu_split: the CPU of the process being profiled lands in its group, and the box's counters move."""

from __future__ import annotations

import os
import time
from pathlib import Path

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


def test_a_renamed_process_counts_its_delta_and_a_reused_pid_counts_as_new() -> None:
    def snap(*procs: cpu_split.Process, pid: int = 7) -> cpu_split.Snapshot:
        return cpu_split.Snapshot({(pid + i, p.started): p for i, p in enumerate(procs)}, 0.0, 0.0)

    before = snap(cpu_split.Process("kworker/0:1-events", 2, started=50, seconds=100.0))
    renamed = snap(cpu_split.Process("kworker/0:1-mm_percpu_wq", 2, started=50, seconds=100.5))
    assert cpu_split.deltas(before, renamed) == {(7, 50): 0.5}  # a kernel worker's name follows its work
    reused = snap(cpu_split.Process("python", 1, started=90, seconds=0.25))
    assert cpu_split.deltas(before, reused) == {(7, 90): 0.25}  # same pid, a new process: all of its CPU


def test_a_snapshot_knows_a_process_by_pid_and_start_time_not_by_its_name() -> None:
    shot = cpu_split.snapshot()
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    started = int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22 of proc(5), starttime
    assert [key for key in shot.procs if key[0] == os.getpid()] == [(os.getpid(), started)]
