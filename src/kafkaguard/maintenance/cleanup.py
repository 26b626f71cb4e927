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
from sqlalchemy import Engine

from kafkaguard.stores.by_database import on_mariadb
from kafkaguard.stores.retention import RETENTIONS, MariaDbRetention, PostgresRetention, RetentionStore

log = logging.getLogger(__name__)


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


class Cleanup:
    """The cleanup job over a :class:`~kafkaguard.stores.retention.RetentionStore` (PostgreSQL, or
    ``kafkaguard.testing.MemoryRetention`` in unit tests)."""

    def __init__(self, store: RetentionStore, settings: CleanupSettings) -> None:
        self.store = store
        self.settings = settings

    def run(self) -> CleanupReport:
        """Delete expired rows of every table in batches of ``settings.batch_size``; skip when another
        instance holds the lock."""
        report = CleanupReport()
        with self.store.exclusive() as got:
            if not got:
                report.skipped = True
                return report
            for rule in RETENTIONS:
                age = timedelta(seconds=getattr(self.settings, rule.setting))
                total = 0
                while True:
                    n = self.store.delete_expired(rule, age=age, limit=self.settings.batch_size)
                    total += n
                    if n < self.settings.batch_size:
                        break
                report.deleted[rule.table] = total
                if total:
                    log.info("cleanup: deleted %d rows from %s", total, rule.table)
        return report


def run_cleanup(engine: Engine, settings: CleanupSettings) -> CleanupReport:
    """:class:`Cleanup` over kafkaguard's tables in ``engine``'s database (PostgreSQL or MariaDB)."""
    store = MariaDbRetention(engine) if on_mariadb(engine) else PostgresRetention(engine)
    return Cleanup(store, settings).run()
