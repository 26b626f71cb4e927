"""Start, signal and wait for the local server processes of the dev stack.

Processes are started in their own session so that they outlive the CLI command that started them
and so that a signal reaches the whole process group. A pid is only trusted after checking that
``/proc/<pid>/cmdline`` still contains the marker we started it with (pids are recycled).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from kafkaguard.errors import PortInUseError, StartTimeoutError


def poll(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll ``condition`` until true or ``timeout`` seconds; return whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    interval: float = 0.1,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``condition`` until it is true; raise :class:`StartTimeoutError` at the deadline.

    ``alive`` is checked between polls so that a process that died is reported at once, with its
    log, instead of after the whole timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if alive is not None and not alive():
            raise StartTimeoutError(f"{what} (the process exited)", 0, log)
        if time.monotonic() >= deadline:
            raise StartTimeoutError(what, timeout, log)
        time.sleep(interval)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Return True when nothing listens on ``host:port`` and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, what: str) -> None:
    """Raise :class:`PortInUseError` when ``port`` is taken."""
    if not port_is_free(port):
        raise PortInUseError(port, what)


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free loopback ports (for test stacks)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Return True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_matches(pid: int, marker: str) -> bool:
    """Return True when ``pid`` is a live, non-zombie process whose command line contains ``marker``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and marker in cmdline


def is_alive(pid: int) -> bool:
    """Return True when ``pid`` exists and is not a zombie.

    Used right after :func:`spawn`, when the pid cannot have been recycled yet but the command
    line may still be empty (the java launcher re-executes itself while starting).
    """
    reap(pid)
    return process_state(pid) not in ("", "Z")


def process_state(pid: int) -> str:
    """Return the one-letter kernel state of ``pid`` (``T`` when stopped), or ``""`` if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> int:
    """Start ``argv`` detached in its own session, output appended to ``log``; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
        )
    return proc.pid


def signal_pid(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to ``pid``; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def reap(pid: int) -> None:
    """Collect ``pid`` if it is our child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate(pid: int, marker: str, *, timeout: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop ``pid`` gracefully (SIGCONT then ``sig``), escalating to SIGKILL after ``timeout``."""
    if not pid_matches(pid, marker):
        return
    signal_pid(pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
    signal_pid(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_matches(pid, marker):
            return
        time.sleep(0.1)
    kill_hard(pid, marker)


def kill_hard(pid: int, marker: str) -> None:
    """SIGKILL ``pid`` and wait until the kernel has removed it."""
    if not pid_matches(pid, marker):
        return
    signal_pid(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reap(pid)
        if not pid_matches(pid, marker):
            return
        time.sleep(0.05)


def find_pid(marker: str) -> int | None:
    """Return the pid of a live process whose command line contains ``marker`` (the oldest), if any.

    Lets a stack adopt a server that another process restarted (its saved pid is then stale).
    """
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and pid_matches(int(entry.name), marker):
            found.append(int(entry.name))
    return min(found) if found else None


def children_of(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid``."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
