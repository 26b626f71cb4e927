"""What listens on a local port, read from the kernel's socket tables (for "loopback only" checks)."""

from __future__ import annotations

from pathlib import Path


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
