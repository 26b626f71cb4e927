"""Part 3: faststream-outbox's relay as a peer row (placeholder until wired)."""

from __future__ import annotations

from pathlib import Path

from bench.common import Stack


def available() -> str | None:
    """``None`` when the peer can run here, else why not."""
    return "not wired yet"


def version() -> str:
    return "?"


def relay_rate(stack: Stack, rows: int, logs: Path) -> float:
    raise NotImplementedError
