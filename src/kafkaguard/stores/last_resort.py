"""``kafkaguard_last_resort``: the consumer's insert, and list, show and stats for operators.

A last-resort row holds a message or outbox row whose normal dead letter the database refused for
its data: bytes, positions and the error only. These queries make such a record findable
(``kafkaguard dead-letters list|show|stats --store last-resort``); every value is a bound
parameter, and the table is :data:`kafkaguard.db.tables.last_resort` (named in ``db/columns``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Insert, func, insert, literal, select

from kafkaguard.db.tables import last_resort as LR

SUMMARY_COLUMNS = ("id", "store", "status", "consumer_group", "topic", "partition", "offset", "outbox_id",
                   "raw_key", "error", "created_at")  # fmt: skip


@dataclass(frozen=True)
class LastResortFilters:
    """Which last-resort records to read; ``None`` means any."""

    status: str | None = None
    key: str | None = None  # compared with the raw key bytes (UTF-8 of the text given)
    since: datetime | None = None
    until: datetime | None = None
    consumer_group: str | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.status is not None:
            out.append(LR.c.status == self.status)
        if self.key is not None:
            out.append(LR.c.raw_key == self.key.encode("utf-8", "surrogateescape"))
        if self.since is not None:
            out.append(LR.c.created_at >= self.since)
        if self.until is not None:
            out.append(LR.c.created_at < self.until)
        if self.consumer_group is not None:
            out.append(LR.c.consumer_group == self.consumer_group)
        return out


def list_last_resort(conn: Connection, filters: LastResortFilters, *, limit: int) -> list[dict[str, Any]]:
    """Matching records, oldest first, at most ``limit`` (raw value and headers left out)."""
    q = select(*(LR.c[c] for c in SUMMARY_COLUMNS)).where(*filters.clauses()).order_by(LR.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(q)]


def show_last_resort(conn: Connection, record_id: int) -> dict[str, Any] | None:
    """Every column of one record, or None."""
    row = conn.execute(select(LR).where(LR.c.id == record_id)).first()
    return None if row is None else dict(row._mapping)


def stats_last_resort(conn: Connection, filters: LastResortFilters) -> list[dict[str, Any]]:
    """Counts by status, store and the error's first word (its class, as the writers record it)."""
    error_class = func.coalesce(func.nullif(func.split_part(LR.c.error, literal(":"), 1), ""), "-")
    columns = (
        LR.c.status, LR.c.store, error_class.label("error_class"),
        func.count().label("count"), func.min(LR.c.created_at).label("oldest"),
    )  # fmt: skip
    q = (
        select(*columns)
        .where(*filters.clauses())
        .group_by(LR.c.status, LR.c.store, error_class)
        .order_by(func.count().desc(), LR.c.status, LR.c.store)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def insert_last_resort(row: dict[str, Any]) -> Insert:
    """Insert one row (as :func:`kafkaguard.consumer.dead_letters.last_resort_row` builds it: bytes,
    numbers and ASCII, nothing a database refuses); ``RETURNING id``."""
    return insert(LR).values(**row).returning(LR.c.id)  # RETURNING: PostgreSQL, and MariaDB since 10.5
