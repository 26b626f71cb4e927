"""Where a relay's wall time goes on this box: CPU of every process group while one relay drains.

``python -m bench.profile relay-cpu [--rows N] [--relay-batch B ...]``: one relay process drains a
pre-filled outbox; ``/proc/<pid>/stat`` of every process on the box and ``/proc/stat`` are read at
the start and the end of the drain, and the CPU time is split into the relay (all its threads,
librdkafka's included), PostgreSQL (all its backends and helpers), the Kafka broker (java) and the
rest. Shares are of one core over the drain's wall time; the box has ``os.cpu_count()`` of them.
A process that ends during the drain is not counted (none of the measured ones does). A group
near 100 % is the bottleneck if its work is serial; a box near 100 % x cores is saturated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("relay", "postgres", "kafka", "other")


@dataclass(frozen=True)
class Process:
    comm: str  # may change while it runs (a kernel worker names its current work item)
    parent: int
    started: int  # clock ticks after boot: with the pid, who it is (a pid is reused, a comm renamed)
    seconds: float  # user + system CPU so far, all threads


@dataclass(frozen=True)
class Snapshot:
    """Every process's CPU seconds, and the box's busy and stolen seconds (all cores), at one instant."""

    procs: dict[tuple[int, int], Process]  # (pid, started) -> the process
    box_busy: float
    steal: float


def _process(pid: str) -> Process | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # gone meanwhile
    # comm is in parentheses and may hold spaces and ')': the fields start after the last ')'.
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5): ppid 4, utime 14, stime 15, starttime 22
    return Process(comm, int(fields[1]), int(fields[19]), (int(fields[11]) + int(fields[12])) / TICKS)


def snapshot() -> Snapshot:
    """The CPU counters of every process and of the box now."""
    procs: dict[tuple[int, int], Process] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _process(entry)) is not None:
            procs[(int(entry), found.started)] = found
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    # user nice system idle iowait irq softirq steal: busy is neither idle nor stolen (steal: this
    # VM's vCPU waited for a host CPU).
    v = [int(x) for x in first]
    return Snapshot(procs, (v[0] + v[1] + v[2] + v[5] + v[6]) / TICKS, v[7] / TICKS)


def _group(pid: int, comm: str, parents: dict[int, int], relay_pid: int) -> str:
    walk = pid
    for _ in range(64):  # a child of the relay (none today) counts as the relay
        if walk == relay_pid:
            return "relay"
        walk = parents.get(walk, 0)
        if walk <= 1:
            break
    if comm.startswith("postgres"):
        return "postgres"
    return "kafka" if comm == "java" else "other"


def deltas(before: Snapshot, after: Snapshot) -> dict[tuple[int, int], float]:
    """CPU seconds each process still alive at ``after`` spent since ``before`` (new ones: all of it)."""
    return {
        key: proc.seconds - (before.procs[key].seconds if key in before.procs else 0.0)
        for key, proc in after.procs.items()
    }


def split(before: Snapshot, after: Snapshot, seconds: float, relay_pid: int) -> dict[str, float]:
    """Each group's CPU over ``seconds`` as a share of one core, plus ``box`` and ``steal`` (all cores)."""
    parents = {pid: proc.parent for (pid, _), proc in after.procs.items()}
    spent: dict[str, float] = dict.fromkeys(GROUPS, 0.0)
    for key, cpu in deltas(before, after).items():
        spent[_group(key[0], after.procs[key].comm, parents, relay_pid)] += cpu
    shares = {name: spent[name] / seconds for name in GROUPS}
    shares["box"] = (after.box_busy - before.box_busy) / seconds
    shares["steal"] = (after.steal - before.steal) / seconds
    return shares


def busiest(before: Snapshot, after: Snapshot, seconds: float, top: int = 6) -> list[tuple[str, float]]:
    """The ``top`` processes by CPU over ``seconds``: ("comm[pid]", share of one core)."""
    ranked = sorted(deltas(before, after).items(), key=lambda item: -item[1])[:top]
    return [(f"{after.procs[key].comm}[{key[0]}]", cpu / seconds) for key, cpu in ranked]
