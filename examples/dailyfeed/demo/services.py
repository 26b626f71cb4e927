"""Start, stop and kill the dailyfeed services as separate OS processes (as real microservices run)."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from kafkaguard.devstack import process


@dataclass
class Service:
    """One service process: its command, environment, log file and (optionally) health URL."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    health_url: str | None = None
    pid: int | None = None
    marker: str = field(default="")

    def start(self, timeout: float = 60.0) -> None:
        self.marker = self.argv[-1] if not self.marker else self.marker
        self.pid = process.spawn(self.argv, log=self.log, env={**os.environ, **self.env}, cwd=Path.cwd())
        if self.health_url:
            url = self.health_url

            def healthy() -> bool:
                try:
                    return httpx.get(url, timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            process.wait_until(
                healthy, timeout=timeout, what=f"service {self.name}", log=self.log,
                alive=lambda: self.pid is not None and process.is_alive(self.pid),
            )  # fmt: skip

    def alive(self) -> bool:
        return self.pid is not None and process.is_alive(self.pid)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.pid is not None:
            process.kill_hard(self.pid, "")
            process.reap(self.pid)

    def stop(self) -> None:
        if self.pid is not None:
            process.terminate(self.pid, "", timeout=20)
            process.reap(self.pid)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_for(condition: object, timeout: float, what: str) -> bool:
    """Poll ``condition()`` until true or ``timeout``; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.5)
    return False
