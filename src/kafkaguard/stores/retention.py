"""Deleting expired rows, for the cleanup job: the retention rule of each table and one bounded batch.

The rules never match an unpublished outbox row nor an open dead letter, and only rows older than
the age given. A batch is one ``DELETE`` of at most ``limit`` rows (by ``ctid``, so no index is
needed and no long lock is held). The cleanup lock is a session-level advisory lock: a second
cleanup of the same database sees it taken and skips its run. Tables are named in ``db/columns``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, text

from kafkaguard.db import columns as C

CLEANUP_LOCK = 0x6B67_636C  # 'kgcl': one cleanup at a time per database

_CLOSED = f"status IN ('{C.DeadLetterStatus.RESTORED.value}', '{C.DeadLetterStatus.DISCARDED.value}')"


@dataclass(frozen=True)
class Retention:
    """Which rows of ``table`` may go once older than the cleanup setting named ``setting``."""

    table: str
    condition: str  # SQL over the table's columns, with ``:age`` the retention (an interval)
    setting: str  # the CleanupSettings field holding the retention, in seconds


RETENTIONS = (
    Retention(C.OUTBOX, "published_at IS NOT NULL AND published_at < now() - :age", "outbox_retention"),
    Retention(C.INBOX, "processed_at < now() - :age", "inbox_retention"),
    Retention(C.PUBLISHER_DEAD_LETTERS, f"{_CLOSED} AND updated_at < now() - :age", "dead_letter_retention"),
    Retention(C.LISTENER_DEAD_LETTERS, f"{_CLOSED} AND updated_at < now() - :age", "dead_letter_retention"),
)


def delete_expired(conn: Connection, rule: Retention, *, age: timedelta, limit: int) -> int:
    """Delete at most ``limit`` rows that ``rule`` lets go at ``age``; return how many went."""
    sql = text(
        f"DELETE FROM {rule.table} WHERE ctid IN "  # noqa: S608 - constant table and condition
        f"(SELECT ctid FROM {rule.table} WHERE {rule.condition} LIMIT :n)"
    )
    return int(conn.execute(sql, {"age": age, "n": limit}).rowcount)


def try_cleanup_lock(conn: Connection) -> bool:
    """Take the cleanup lock for ``conn``'s session if free (True), else False at once."""
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": CLEANUP_LOCK}).scalar_one())


def release_cleanup_lock(conn: Connection) -> None:
    """Give the cleanup lock of ``conn``'s session back."""
    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": CLEANUP_LOCK})
