"""Graceful stop on SIGTERM / SIGINT for kafkaguard's long-running processes (one place for all of them).

The handler only asks the process to stop (sets an event, calls ``stop()``); the worker finishes
what it is doing — commits, settles its batch, ends its run — before it exits.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


def on_stop_signals(request_stop: Callable[[], None], what: str) -> None:
    """Call ``request_stop`` on SIGTERM or SIGINT; ``what`` names the process in the log line.

    Signal handlers can only be installed from the main thread; elsewhere (a worker started in a
    thread by a test or an embedding application) this does nothing and the caller stops it.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping %s", signum, what)
        request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
