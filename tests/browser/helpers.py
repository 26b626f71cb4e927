"""Serve a console app with uvicorn on a free loopback port in a thread; save screenshots (browser tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Page

from kafkaguard.testing import free_ports

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "reports" / "console"  # git-ignored test artifacts


@contextmanager
def serving(app: FastAPI, *, timeout: float = 20.0) -> Iterator[str]:
    """``app`` served at the yielded base URL until the block ends (polls for start-up with a deadline)."""
    [port] = free_ports(1)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="console-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the console did not start on 127.0.0.1:{port} within {timeout} s")
        time.sleep(0.02)  # polling for start-up, not synchronisation of the code under test
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as ``SHOTS/name.png`` (``reports/console/`` by default, git-ignored)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
