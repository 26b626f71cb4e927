"""Find the external programs the dev stack runs, with an actionable error when one is missing."""

from __future__ import annotations

import shutil

from kafkaguard.errors import ToolMissingError

_HINTS = {
    "java": "Install a JDK 17+ (Debian: `apt-get install -y openjdk-17-jre-headless`).",
    "mvn": "Install Maven (Debian: `apt-get install -y maven`); it fetches Kafka's jars.",
    "apt-get": "PostgreSQL 15 is installed from Debian's package; on another system install "
    "PostgreSQL 15 yourself and put its bin directory on PATH.",
}


def require(tool: str) -> str:
    """Return the absolute path of ``tool`` or raise :class:`ToolMissingError` with a hint."""
    path = shutil.which(tool)
    if path is None:
        raise ToolMissingError(tool, _HINTS.get(tool, ""))
    return path
