"""Aggregate reads for the database gauges (``kafkaguard_outbox_backlog``, dead letters, parked keys).

Read-only and cheap enough to run at every Prometheus scrape: one count over the outbox's
unpublished rows, one grouped count per dead-letter table, one distinct count of parked keys, the
oldest pending dead letter of each table, all
under a statement timeout set for the transaction only. The tables are named in ``db/columns``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from kafkaguard.db import columns as C

_BACKLOG = f"""
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM {C.OUTBOX} WHERE published_at IS NULL
"""  # noqa: S608 - constant table names
_PUBLISHER_DL = f"""
SELECT status, coalesce(last_error_class, '-'), count(*) FROM {C.PUBLISHER_DEAD_LETTERS} GROUP BY 1, 2
"""  # noqa: S608
_LISTENER_DL = f"""
SELECT status, coalesce(error_class, reason), count(*) FROM {C.LISTENER_DEAD_LETTERS} GROUP BY 1, 2
"""  # noqa: S608
_OLDEST_PENDING = f"""
SELECT 'publisher', coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM {C.PUBLISHER_DEAD_LETTERS} WHERE status = :pending
UNION ALL
SELECT 'listener', coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM {C.LISTENER_DEAD_LETTERS} WHERE status = :pending
"""  # noqa: S608
_PARKED_KEYS = f"""
SELECT count(*) FROM (SELECT DISTINCT consumer_group, key FROM {C.LISTENER_DEAD_LETTERS} WHERE status = :parked) k
"""  # noqa: S608


@dataclass(frozen=True)
class Gauges:
    """One reading of the database gauges."""

    backlog: int  # outbox rows not yet published
    oldest_age_seconds: float  # age of the oldest of them, 0 when there is none
    dead_letters: list[tuple[str, str, str, int]]  # (store, status, error class, count)
    parked_keys: int  # (consumer group, key) pairs with parked events
    oldest_pending_age_seconds: dict[str, float] = field(default_factory=dict)  # store → age, 0 when none


def read_gauges(conn: Connection, *, timeout_ms: int) -> Gauges:
    """Read every gauge on ``conn`` in its current transaction, each query bounded by ``timeout_ms``.

    Raises SQLAlchemy's errors as they come (the collector turns any of them into ``db_up 0``).
    """
    conn.execute(text("SELECT set_config('statement_timeout', :t, true)"), {"t": str(timeout_ms)})
    count, age = conn.execute(text(_BACKLOG)).one()
    dead = [("publisher", str(s), str(e), int(n)) for s, e, n in conn.execute(text(_PUBLISHER_DL))]
    dead += [("listener", str(s), str(e), int(n)) for s, e, n in conn.execute(text(_LISTENER_DL))]
    parked = conn.execute(text(_PARKED_KEYS), {"parked": C.DeadLetterStatus.PARKED.value}).scalar_one()
    pending = {"pending": C.DeadLetterStatus.PENDING.value}
    oldest = {str(store): float(a) for store, a in conn.execute(text(_OLDEST_PENDING), pending)}
    return Gauges(int(count), float(age), dead, int(parked), oldest)
