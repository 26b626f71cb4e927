"""Run a job once (a Kubernetes CronJob) or every N seconds (a built-in schedule) until SIGTERM."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

from kafkaguard.errors import ConfigurationError
from kafkaguard.signals import on_stop_signals

log = logging.getLogger(__name__)

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_interval(text: str) -> float:
    """``'60s'``, ``'5m'``, ``'1h'``, ``'250ms'`` or plain seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if match is None or float(match.group(1)) <= 0:
        raise ConfigurationError(f"bad interval {text!r}: use a positive number with s, m, h or ms (e.g. 60s)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def run_every(interval: float, job: Callable[[], object], *, stop: threading.Event | None = None) -> None:
    """Run ``job`` now and then every ``interval`` seconds until ``stop`` is set or SIGTERM/SIGINT arrives.

    A failing run is logged and the schedule goes on (the next run retries); the job in progress
    always finishes before the loop exits.
    """
    stop = stop or threading.Event()
    on_stop_signals(stop.set, "the schedule after the current run")
    while not stop.is_set():
        try:
            job()
        except Exception:
            log.exception("scheduled run failed; retrying in %.0f s", interval)
        stop.wait(interval)
