"""Fixtures and the closing summary of the fuzz suite (see ``profile.py`` for the profiles)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.internal.conjecture import engine as hypothesis_engine

from tests.fuzz.logcheck import LogLines
from tests.fuzz.profile import is_full, pick, storage_dir
from tests.fuzz.report import REPORT_KEY, FuzzReport

set_hypothesis_home_dir(storage_dir())
# Shrinking runs examples against real servers (tens of milliseconds each); hypothesis has no public
# setting for its 300 s shrink budget, so the quick profile lowers the engine's constant.
hypothesis_engine.MAX_SHRINKING_SECONDS = pick(60, 300)


@pytest.fixture
def fuzz_report(request: pytest.FixtureRequest) -> FuzzReport:
    """The session's counts (one object for every fuzz test)."""
    return request.config.stash.setdefault(REPORT_KEY, FuzzReport())


@pytest.fixture(autouse=True)
def kafkaguard_log() -> Iterator[LogLines]:
    """kafkaguard's log lines go to a :class:`LogLines` only: a fuzz run dead-letters thousands of
    messages, and pytest would print every line of a failing test."""
    logger = logging.getLogger("kafkaguard")
    handler = LogLines()
    saved = logger.propagate, logger.level
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate, logger.level = saved


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/fuzz/" in str(item.fspath):
            item.add_marker(pytest.mark.fuzz)
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    report = terminalreporter.config.stash.get(REPORT_KEY, None)
    if report is None or report.empty():
        return
    terminalreporter.section(f"kafkaguard fuzz counts ({'full' if is_full() else 'quick'} profile)")
    for line in report.lines():
        terminalreporter.write_line(line)
