"""``run_processes``: the supervisor of ``kafkaguard relay --processes N`` (real child processes, no servers)."""

from __future__ import annotations

import signal
import sys
import threading
from functools import partial
from pathlib import Path

from kafkaguard.relay.processes import run_processes


def _until_term() -> None:
    """Wait for the supervisor's SIGTERM, as a relay child does."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(60)


def _second_exits(code: int, index: int) -> None:
    if index == 1:
        sys.exit(code)
    _until_term()


def _announce_then_wait(ready: str, index: int) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Path(f"{ready}.{index}").write_text("up")  # tells the test this child's handler is installed
    stop.wait(60)


def test_a_child_that_ends_stops_the_others_and_its_code_is_returned() -> None:
    assert run_processes(partial(_second_exits, 3), 3, threading.Event()) == 3


def test_stop_ends_every_child_cleanly(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(run_processes(partial(_announce_then_wait, str(ready)), 2, stop))
    )
    thread.start()
    up = threading.Event()
    while not up.wait(0.05):  # the children are other processes: they report through files
        if all(Path(f"{ready}.{i}").exists() for i in range(2)):
            up.set()
    stop.set()
    thread.join(60)
    assert result == [0]
