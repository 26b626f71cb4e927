"""Service processes started by dev tooling (the chaos suite, the demo): start, health wait, SIGKILL, SIGTERM.

A process is known by the pid :meth:`ServiceProcess.start` got; only processes started here are
ever signalled.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kafkaguard.devstack import process


@dataclass
class ServiceProcess:
    """One service process (a Python worker, an API under uvicorn); ``restart()`` starts it again."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(repr=False)  # database URLs with passwords, http secrets
    log: Path
    health_url: str | None = None
    pid: int | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the process; with a health URL, wait until it answers 200."""
        self.pid = process.spawn(self.argv, log=self.log, env={**os.environ, **self.env})
        if self.health_url is not None:
            url = self.health_url

            def healthy() -> bool:
                try:
                    return httpx.get(url, timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            process.wait_until(healthy, timeout=timeout, what=f"service {self.name}", log=self.log, alive=self.alive)

    def alive(self) -> bool:
        """Whether the process runs (a zombie counts as gone)."""
        return self.pid is not None and process.is_alive(self.pid)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.pid is not None:
            process.kill_hard(self.pid, "")
            process.reap(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, escalating to SIGKILL after ``timeout`` seconds."""
        if self.pid is not None:
            process.terminate(self.pid, "", timeout=timeout)
            process.reap(self.pid)

    def restart(self) -> None:
        """Kill (if running) and start again."""
        self.kill()
        self.start()


def python(*args: str) -> list[str]:
    """``argv`` running this interpreter."""
    return [sys.executable, *args]
