"""The unit suite runs on in-memory fakes only: any attempt to reach Kafka or PostgreSQL fails the test.

Three guards, because the clients do not all connect through Python:

- Python sockets (httpx, the stdlib): ``connect`` to a Kafka or PostgreSQL port (the dev stack's
  29092/25432, the defaults 9092/5432, and those of ``KAFKAGUARD_BOOTSTRAP_SERVERS`` /
  ``KAFKAGUARD_DATABASE_URL``) or to any host that is not loopback raises;
- psycopg (libpq connects in C; SQLAlchemy's psycopg dialects go through ``psycopg.connect`` and
  ``AsyncConnection.connect``): a connection to one of those ports (5432 when none is given) or to
  a host that is not loopback raises;
- librdkafka connects in C too, in its own threads: a TCP connection of this process to one of
  those ports (read from ``/proc``) that is open when a test ends fails that test, and one open when
  the session ends fails the session (a client kept alive by a test that ended too early to see it).

Loopback addresses on other ports stay allowed: the chaos proxy's own test, in-process HTTP servers,
and builders tested against ``127.0.0.1:1``, where nothing listens and the refusal is the point.
"""

from __future__ import annotations

import gc
import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

FORBIDDEN_PORTS = frozenset({29092, 25432, 9092, 5432})


def _configured_ports() -> set[int]:
    """Ports named by the environment's bootstrap servers and database URL."""
    text = " ".join(os.environ.get(v, "") for v in ("KAFKAGUARD_BOOTSTRAP_SERVERS", "KAFKAGUARD_DATABASE_URL"))
    return {int(p) for p in re.findall(r":(\d{2,5})(?=[/,\s]|$)", text)}


PORTS = FORBIDDEN_PORTS | _configured_ports()


class NetworkInUnitTest(AssertionError):
    """A unit test tried to reach a server; it belongs in tests/integration."""


def _is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost: a lookup, and a remote host


def _check(address: Any) -> None:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), int(address[1])
        if port in PORTS or not _is_loopback(host):
            raise NetworkInUnitTest(f"unit tests use in-memory fakes: a connection to {host}:{port} was opened")


def _open_ports() -> set[int]:
    """Remote ports of this process's TCP connections (Linux /proc; empty elsewhere)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return set()
    inodes = set()
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    if not inodes:  # most tests hold no socket: skip reading the namespace-wide tables (ms per test)
        return set()
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes:
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def _assert_no_server_connection(when: str) -> None:
    reached = _open_ports() & PORTS
    if reached:
        # A connection held only by garbage (an engine an earlier integration test of the same session
        # dropped, in a reference cycle) is not this test's: collect it, then look again. Opening one
        # from a unit test is refused at connect() anyway.
        gc.collect()
        reached = _open_ports() & PORTS
    assert not reached, f"unit tests use in-memory fakes: {when}, this process holds TCP connections to {reached}"


@pytest.fixture(autouse=True, scope="session")
def _no_server_connection_left() -> Iterator[None]:
    yield
    _assert_no_server_connection("at the end of the unit session")


@pytest.fixture(autouse=True)
def _no_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def connect(self: socket.socket, address: Any) -> None:
        _check(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(address)
        return real_connect_ex(self, address)

    real_sync, real_async = psycopg.Connection.connect, psycopg.AsyncConnection.connect

    def check_database(conninfo: str = "", **kwargs: Any) -> None:
        params = conninfo_to_dict(conninfo, **kwargs)
        for host in str(params.get("host") or params.get("hostaddr") or "localhost").split(","):
            _check((host, int(str(params.get("port") or 5432).split(",")[0])))

    def sync_connect(cls: type[psycopg.Connection[Any]], conninfo: str = "", **kwargs: Any) -> Any:
        check_database(conninfo, **kwargs)
        return real_sync(conninfo, **kwargs)

    async def async_connect(cls: type[psycopg.AsyncConnection[Any]], conninfo: str = "", **kwargs: Any) -> Any:
        check_database(conninfo, **kwargs)
        return await real_async(conninfo, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(psycopg, "connect", lambda conninfo="", **kw: sync_connect(psycopg.Connection, conninfo, **kw))
    monkeypatch.setattr(psycopg.Connection, "connect", classmethod(sync_connect))
    monkeypatch.setattr(psycopg.AsyncConnection, "connect", classmethod(async_connect))
    yield
    _assert_no_server_connection("after this test")
