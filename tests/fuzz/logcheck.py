"""kafkaguard's log lines during a fuzz test: kept out of pytest's report, checked for size (issue 13, Deliver 6)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tests.fuzz.strategies import Fixture

MAX_LINE = 4_000
"""Longest log line accepted: keys and values reach the log only through ``logtext.short``, so even
a line naming several of them stays far below this while the inputs reach megabytes."""


@dataclass(eq=False)  # a logging.Handler must stay hashable
class LogLines(logging.Handler, Fixture):
    """A handler that keeps the longest lines seen (not every line: a fuzz run writes thousands)."""

    too_long: list[str] = field(default_factory=list)
    count: int = 0

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        text = self.format(record)
        if len(text) > MAX_LINE and len(self.too_long) < 5:
            self.too_long.append(f"{record.name} {record.levelname} ({len(text)} chars): {text[:300]!r}…")

    def assert_bounded(self) -> None:
        lines, self.too_long = self.too_long, []
        assert not lines, f"log lines longer than {MAX_LINE} characters (keys/values not truncated): {lines}"
