"""Deleting expired rows, for the cleanup job: the retention rule of each table, the port the job
runs over (:class:`RetentionStore`) and its PostgreSQL adapter (:class:`PostgresRetention`).

The rules never match an unpublished outbox row nor an open dead letter, and only rows older than
the age given. A batch is one ``DELETE`` of at most ``limit`` rows (by ``ctid``, so no index is
needed and no long lock is held). The cleanup lock is a session-level advisory lock: a second
cleanup of the same database sees it taken and skips its run. Tables are named in ``db/columns``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Connection, Engine, text

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


class RetentionStore(Protocol):
    """What the cleanup job needs: one run at a time per database, and bounded deletes by rule.

    Promise (the contract suite checks it for every adapter): :meth:`delete_expired` removes only
    rows its rule lets go at ``age`` — never an unpublished outbox row, never an open dead letter,
    never a younger row — and at most ``limit`` of them.
    """

    def exclusive(self) -> AbstractContextManager[bool]:
        """Hold the cleanup lock for the ``with`` block if it is free (``True``), else ``False`` at once."""
        ...

    def delete_expired(self, rule: Retention, *, age: timedelta, limit: int) -> int:
        """Delete at most ``limit`` rows that ``rule`` lets go at ``age`` (own transaction); how many went."""
        ...


class PostgresRetention:
    """:class:`RetentionStore` on PostgreSQL: a session-level advisory lock, one short transaction per batch."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """See :meth:`RetentionStore.exclusive`: the lock lives on a connection of its own."""
        with self.engine.connect() as lock_conn:
            got = try_cleanup_lock(lock_conn)
            lock_conn.commit()
            try:
                yield got
            finally:
                if got:
                    release_cleanup_lock(lock_conn)
                    lock_conn.commit()

    def delete_expired(self, rule: Retention, *, age: timedelta, limit: int) -> int:
        """See :meth:`RetentionStore.delete_expired`."""
        with self.engine.begin() as conn:
            return delete_expired(conn, rule, age=age, limit=limit)


class MariaDbRetention:
    """:class:`RetentionStore` on MariaDB: a named lock (``GET_LOCK(..., 0)``) for the run, one short
    transaction per batch (``DELETE ... LIMIT``; ``now()`` is UTC on kafkaguard's connections)."""

    LOCK = "kafkaguard.cleanup"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def exclusive(self) -> Iterator[bool]:
        """See :meth:`RetentionStore.exclusive`: the lock lives on a connection of its own."""
        with self.engine.connect() as lock_conn:
            got = lock_conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": self.LOCK}).scalar_one() == 1
            lock_conn.commit()
            try:
                yield got
            finally:
                if got:
                    lock_conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": self.LOCK})
                    lock_conn.commit()

    def delete_expired(self, rule: Retention, *, age: timedelta, limit: int) -> int:
        """See :meth:`RetentionStore.delete_expired`."""
        condition = rule.condition.replace("now() - :age", "UTC_TIMESTAMP(6) - INTERVAL :age_us MICROSECOND")
        sql = text(f"DELETE FROM {rule.table} WHERE {condition} LIMIT :n")  # noqa: S608 - constant table and condition
        params = {"age_us": int(age.total_seconds() * 1_000_000), "n": limit}
        with self.engine.begin() as conn:
            return int(conn.execute(sql, params).rowcount)
