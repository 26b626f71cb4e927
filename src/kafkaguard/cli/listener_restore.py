"""The listener restore job: due listener dead letters re-run through the handlers and the inbox.

Per key, :func:`kafkaguard.consumer.restore.restore_key` applies the key's open records in id order
under the key lock the consumer also takes; this module picks the due keys of one consumer group
and loads the group's handler registry (``module:attribute``).
"""

from __future__ import annotations

import importlib
import logging

from sqlalchemy import Engine, select

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.restore import due_keys, restore_key
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.tables import listener_dead_letters as DL
from kafkaguard.errors import ConfigurationError, StoreUnavailableError
from kafkaguard.restore.publisher_job import RunReport
from kafkaguard.settings import KafkaguardSettings

log = logging.getLogger("kafkaguard.restore.listener")


def load_registry(spec: str | None) -> HandlerRegistry:
    """Import ``module:attribute`` and return the HandlerRegistry it names."""
    if not spec or ":" not in spec:
        raise ConfigurationError("the listener store needs --app module:registry (the consumer's handlers)")
    module_name, _, attr = spec.partition(":")
    try:
        registry = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot load handlers {spec!r}: {exc}") from exc
    if not isinstance(registry, HandlerRegistry):
        raise ConfigurationError(f"{spec!r} is a {type(registry).__name__}, not a HandlerRegistry")
    return registry


def listener_process_keys(
    settings: KafkaguardSettings, engine: Engine, keys: list[str], *, app: str | None
) -> RunReport:
    """Restore ``keys`` of the configured consumer group now (heads first, per-key order)."""
    registry = load_registry(app)
    group = settings.consumer.group_id
    report = RunReport()
    for key in keys:
        try:
            result = restore_key(
                engine, registry, group, key, restored_by="restore", policy=settings.restore.policy,
                consumer_settings=settings.consumer,
            )  # fmt: skip
        except StoreUnavailableError:
            log.warning("database unavailable; the listener restore run stops here and retries next time")
            break
        report.restored += len(result.restored)
        report.restored_ids += list(result.restored)
        if result.failed_id is not None:
            if _status(engine, result.failed_id) == DeadLetterStatus.FAILED.value:
                report.failed += 1
            else:
                report.retried += 1
    return report


def _status(engine: Engine, record_id: int) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(DL.c.status).where(DL.c.id == record_id)).scalar_one_or_none()


def listener_run_once(settings: KafkaguardSettings, engine: Engine, *, app: str) -> RunReport:
    """Restore every key of the configured group whose head dead letter is due."""
    group = settings.consumer.group_id
    keys = [k for g, k in due_keys(engine, limit=settings.restore.batch_size * 10) if g == group]
    return listener_process_keys(settings, engine, keys[: settings.restore.batch_size], app=app)
