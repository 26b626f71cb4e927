"""A small asyncio TCP proxy the suite controls, to cut the network between services and a broker.

Kafka clients connect to the addresses a broker *advertises*, not to the bootstrap address, so the
broker behind this proxy runs with its advertised listener set to the proxy's port: every client
connection (bootstrap and afterwards) goes through here. ``cut()`` resets every open connection
and refuses new ones until ``heal()`` — what a partition between the services and the broker
looks like to a client. The broker keeps running and its controller quorum is untouched.

Runs its event loop in a daemon thread; ``cut``/``heal``/``close`` are thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable


class TcpProxy:
    """Forward ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port`` until cut."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False
        self._server: asyncio.Server | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="chaos-proxy", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"the chaos proxy did not start on port {listen_port}")

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.listen_port, reuse_address=True)
        )
        started.set()
        self._loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._cut:
            client_w.transport.abort()  # refused: reset at once
            return
        try:
            broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, broker_w}
        try:
            await asyncio.gather(self._pipe(client_r, broker_w), self._pipe(broker_r, client_w))
        finally:
            self._writers -= {client_w, broker_w}

    def _abort_all(self) -> None:
        self._cut = True
        for w in list(self._writers):
            w.transport.abort()

    def _call(self, fn: Callable[[], None]) -> None:
        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)  # done when this returns

    def cut(self) -> None:
        """Reset every connection through the proxy and refuse new ones (done when it returns)."""
        self._call(self._abort_all)

    def heal(self) -> None:
        """Accept and forward connections again."""
        self._call(lambda: setattr(self, "_cut", False))

    async def _shutdown(self) -> None:
        self._abort_all()
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Stop the proxy and its thread."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
