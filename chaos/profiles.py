"""Profiles of the chaos suite: how many events, how fast, how long each fault lasts.

- ``quick`` (runs inside ``make test``): about 1,000 events per run at 150 writes/s, short faults,
  and a subset of scenarios x modes chosen to finish in a few minutes on two cores;
- ``full`` (``make chaos``): 10,000 events per run at 250 writes/s, the brief's fault durations
  (a broker paused for 30 s), every scenario for every mode it applies to.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Numbers of one profile; times in seconds."""

    name: str
    events: int
    rate: float  # writes per second of the writer (at most)
    fault_seconds: float  # how long an outage lasts (broker down, PostgreSQL down, network cut)
    pause_seconds: float  # how long a broker stays frozen with SIGSTOP
    quiet_seconds: float  # recovery ends when nothing moved for this long (and nothing is pending)
    recovery_timeout: float  # recovery gives up after this long
    keys: int = 50


QUICK = Profile("quick", events=1000, rate=150.0, fault_seconds=4.0, pause_seconds=6.0, quiet_seconds=6.0,
                recovery_timeout=90.0)  # fmt: skip
FULL = Profile("full", events=10_000, rate=250.0, fault_seconds=15.0, pause_seconds=30.0, quiet_seconds=15.0,
               recovery_timeout=300.0)  # fmt: skip
PROFILES = {p.name: p for p in (QUICK, FULL)}
