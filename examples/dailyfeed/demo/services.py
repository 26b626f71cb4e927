"""Start, stop and kill the dailyfeed services as separate OS processes (as real microservices run)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from kafkaguard.devstack.services import ServiceProcess

Service = ServiceProcess


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> bool:
    """Poll ``condition()`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return False
