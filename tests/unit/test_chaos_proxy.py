"""The chaos suite's TCP proxy: forwards bytes, cuts (resets and refuses) and heals."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from chaos.proxy import TcpProxy
from kafkaguard.devstack.process import free_ports


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(1024):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    # A short poll: shutdown() waits for the loop to notice (0.5 s by default, per test).
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    p = TcpProxy(free_ports(1)[0], server.server_address[1])
    yield p
    p.close()
    server.shutdown()


def _reaches(port: int) -> bool:
    """Whether a ping through ``port`` comes back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"ping")
            return s.recv(16) == b"ping"
    except OSError:
        return False


def test_forwards_cuts_and_heals(proxy: TcpProxy) -> None:
    assert _reaches(proxy.listen_port)
    held = socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=5)
    held.sendall(b"a")
    assert held.recv(1) == b"a"
    proxy.cut()
    try:  # the open connection is reset (or closed) ...
        held.sendall(b"b")
        assert held.recv(1) == b""
    except OSError:
        pass
    assert not _reaches(proxy.listen_port)  # ... and new ones are refused
    proxy.heal()
    assert _reaches(proxy.listen_port)
    held.close()
