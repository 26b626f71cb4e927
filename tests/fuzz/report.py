"""Counts of a fuzz run, printed at the end of pytest's output (``make fuzz`` reads them off)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.fuzz.strategies import Fixture


@dataclass(repr=False)
class FuzzReport(Fixture):
    """What the fuzz tests of one pytest session ran and saw.

    ``*_crashes`` counts examples in which a worker or relay raised or died (shrinking replays
    a failing example, so one bug may count several times); ``stalled`` counts partitions whose
    committed offset did not reach the end, and outbox rows left without an outcome.
    """

    apply_records: int = 0
    apply_outcomes: Counter[str] = field(default_factory=Counter)
    apply_crashes: int = 0
    messages: int = 0
    consumer_outcomes: Counter[str] = field(default_factory=Counter)
    consumer_crashes: int = 0
    stalled_partitions: int = 0
    relay_rows: int = 0
    relay_outcomes: Counter[str] = field(default_factory=Counter)
    relay_crashes: int = 0
    stalled_rows: int = 0
    http_requests: int = 0
    http_statuses: Counter[int] = field(default_factory=Counter)

    def empty(self) -> bool:
        return not (self.apply_records or self.messages or self.relay_rows or self.http_requests)

    def lines(self) -> list[str]:
        def kinds(c: Counter[str] | Counter[int]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))) or "-"

        return [
            f"apply path: records={self.apply_records} outcomes: {kinds(self.apply_outcomes)}"
            f" crashes={self.apply_crashes}",
            f"consumer (real broker): messages={self.messages} outcomes: {kinds(self.consumer_outcomes)}"
            f" crashes={self.consumer_crashes} stalled partitions={self.stalled_partitions}",
            f"relay (real broker): rows={self.relay_rows} outcomes: {kinds(self.relay_outcomes)}"
            f" crashes={self.relay_crashes} stalled rows={self.stalled_rows}",
            f"http endpoint: requests={self.http_requests} statuses: {kinds(self.http_statuses)}",
        ]


REPORT_KEY = pytest.StashKey[FuzzReport]()
