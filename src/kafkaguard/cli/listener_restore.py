"""Listener restore wiring (filled in when the consumer lands)."""

from __future__ import annotations

from sqlalchemy import Engine

from kafkaguard.restore.publisher_job import RunReport
from kafkaguard.settings import KafkaguardSettings


def listener_run_once(settings: KafkaguardSettings, engine: Engine, *, app: str) -> RunReport:
    raise NotImplementedError("listener restore arrives with the consumer")


def listener_process_keys(
    settings: KafkaguardSettings, engine: Engine, keys: list[str], *, app: str | None
) -> RunReport:
    raise NotImplementedError("listener restore arrives with the consumer")
