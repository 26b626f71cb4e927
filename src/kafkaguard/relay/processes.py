"""Several relay processes on one host, started and stopped together (``kafkaguard relay --processes N``).

Why: the relay's per-row work is Python (claim fetch, message building, delivery reports) and runs
under one GIL; ``N`` processes are ``N`` GILs. They need nothing new to be safe together: each child
is an ordinary :class:`~kafkaguard.relay.worker.Relay` with its own connections, and the children
share the outbox's 64 shards through the same advisory locks as relays on different hosts (one
owner per shard, per-key order kept, a dead child's shards free the moment its connection closes).

Supervision (:func:`run_processes`): the children are started with the ``spawn`` method (no state
forked from the parent's threads), then the parent waits. When ``stop`` is set it asks every child
to stop (SIGTERM: each settles its batch and ends its run) and waits for them; when a child ends
on its own (a crash, a refused login, a missing schema) the parent stops the others too and
returns that child's exit code, so the service manager sees one failed service and restarts it,
instead of a host quietly running fewer relays than configured.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

_GRACE = 60.0  # seconds a child gets to settle its batch after SIGTERM before it is killed


def run_processes(target: Callable[[int], None], count: int, stop: threading.Event, *, what: str = "relay") -> int:
    """Run ``target(i)`` for ``i`` in ``0..count-1``, each in a child process, until ``stop`` or a child ends.

    ``target`` must be picklable (a module-level function, or a :func:`functools.partial` of one with
    picklable arguments): the children are spawned. Returns 0 when every child stopped because it
    was asked to, else the exit code of the first child that ended on its own (1 if it had none).
    A child stopped by a signal of its own (Ctrl-C reaches the whole process group) also ends the rest.
    """
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=target, args=(i,), name=f"{what}-{i}") for i in range(count)]
    for child in children:
        child.start()
    logger.info("%s: %d processes started (pids %s)", what, count, ", ".join(str(c.pid) for c in children))
    code = 0
    sentinels = [c.sentinel for c in children]
    try:
        while not stop.is_set():
            ready = multiprocessing.connection.wait(sentinels, timeout=0.5)
            if not ready:
                continue  # nothing ended: look at stop again
            first = children[sentinels.index(ready[0])]  # type: ignore[arg-type]
            first.join(10)  # its sentinel fires as it exits, a moment before it can be reaped
            code = 1 if first.exitcode is None else first.exitcode
            logger.log(logging.INFO if code == 0 else logging.ERROR,
                       "%s: process %s (pid %s) ended with %s; stopping the others", what, first.name, first.pid,
                       first.exitcode)  # fmt: skip
            break
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: the relay's graceful stop
        for child in children:
            child.join(_GRACE)
            if child.is_alive():
                logger.error("%s: process %s did not stop within %.0f s; killing it", what, child.name, _GRACE)
                child.kill()
                child.join(5)
    return code
