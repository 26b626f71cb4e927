"""Start, stop and kill the dailyfeed services as separate OS processes (as real microservices run)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from kafkaguard.testing import ServiceProcess, poll

Service = ServiceProcess


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> bool:
    """Poll ``condition()`` (``what``) until true or ``timeout``; returns whether it became true."""
    return poll(condition, timeout, interval=0.5)
