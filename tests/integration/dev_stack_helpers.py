"""Helpers of the dev-stack tests: ``kafkaguard dev ...`` as a subprocess on a run folder, and what
listens on a local port (for "loopback only" checks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_dev(
    args: list[str], run_dir: Path, *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m kafkaguard ARGS`` with ``KAFKAGUARD_RUN_DIR=run_dir``; fails the test on a non-zero
    exit unless not ``check``."""
    env = {**os.environ, "KAFKAGUARD_RUN_DIR": str(run_dir), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "kafkaguard", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        pytest.fail(f"kafkaguard {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) of the sockets listening on ``port``;
    ``["0100007F"]`` is 127.0.0.1 alone (nothing on ``::`` or ``0.0.0.0``)."""
    found = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(name).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found
