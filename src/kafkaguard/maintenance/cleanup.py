"""Delete what is no longer needed, in bounded batches, one instance at a time.

- published outbox rows (when the relay marks instead of deleting) older than ``outbox_retention``;
- inbox rows older than ``inbox_retention`` — keep it longer than any redelivery can take
  (Kafka's retention of the topics plus the longest consumer outage), or a very late duplicate
  would be applied again;
- restored and discarded dead letters older than ``dead_letter_retention``.

Guarantee: never deletes an unpublished outbox row, an open dead letter, or anything younger than
its retention. A session-level advisory lock makes a second instance skip the run instead of
competing; each batch is its own short transaction so the tables stay available.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, text

from kafkaguard.db import columns as C

log = logging.getLogger(__name__)

CLEANUP_LOCK = 0x6B67_636C  # 'kgcl': one cleanup at a time per database


class CleanupSettings(BaseModel):
    """Retention per table (seconds) and the batch size."""

    model_config = ConfigDict(frozen=True)
    outbox_retention: float = Field(default=24 * 3600, ge=0)
    inbox_retention: float = Field(default=14 * 24 * 3600, ge=0)
    dead_letter_retention: float = Field(default=30 * 24 * 3600, ge=0)
    batch_size: int = Field(default=5000, ge=1)


@dataclass
class CleanupReport:
    """Rows deleted per table; ``skipped`` when another instance held the lock."""

    deleted: dict[str, int] = field(default_factory=dict)
    skipped: bool = False


_TARGETS = (
    (C.OUTBOX, "published_at IS NOT NULL AND published_at < now() - :age", "outbox_retention"),
    (C.INBOX, "processed_at < now() - :age", "inbox_retention"),
    (
        C.PUBLISHER_DEAD_LETTERS,
        "status IN ('restored', 'discarded') AND updated_at < now() - :age",
        "dead_letter_retention",
    ),
    (
        C.LISTENER_DEAD_LETTERS,
        "status IN ('restored', 'discarded') AND updated_at < now() - :age",
        "dead_letter_retention",
    ),
)


def run_cleanup(engine: Engine, settings: CleanupSettings) -> CleanupReport:
    """Delete expired rows of every table in batches of ``settings.batch_size``."""
    report = CleanupReport()
    with engine.connect() as lock_conn:
        got = lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": CLEANUP_LOCK}).scalar_one()
        lock_conn.commit()
        if not got:
            report.skipped = True
            return report
        try:
            for table, condition, retention in _TARGETS:
                age = timedelta(seconds=getattr(settings, retention))
                sql = text(
                    f"DELETE FROM {table} WHERE ctid IN "  # noqa: S608 - constant table and condition
                    f"(SELECT ctid FROM {table} WHERE {condition} LIMIT :n)"
                )
                total = 0
                while True:
                    with engine.begin() as conn:
                        n = conn.execute(sql, {"age": age, "n": settings.batch_size}).rowcount
                    total += n
                    if n < settings.batch_size:
                        break
                report.deleted[table] = total
                if total:
                    log.info("cleanup: deleted %d rows from %s", total, table)
        finally:
            lock_conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CLEANUP_LOCK})
            lock_conn.commit()
    return report
