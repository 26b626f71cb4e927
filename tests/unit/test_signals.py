"""SIGTERM/SIGINT ask a kafkaguard process to stop; off the main thread nothing is installed."""

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from kafkaguard.signals import on_stop_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_requests_a_stop(signum: int, restore_handlers: None) -> None:
    stop = threading.Event()
    on_stop_signals(stop.set, "test worker")
    os.kill(os.getpid(), signum)  # handled synchronously by the main thread, before kill returns here
    assert stop.wait(5)


def test_off_the_main_thread_no_handler_is_installed(restore_handlers: None) -> None:
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=on_stop_signals, args=(lambda: None, "thread worker"))
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before
