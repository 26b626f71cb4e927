"""Operator queries over both dead-letter stores: list, show, stats, replay's candidates and checks,
reset for replay, discard.

Every query is parameterised (values never enter SQL text); the two table names come from a
closed enum. Changes an operator makes (replay, discard) are appended to the record's history
so that the audit trail survives.

The same queries run on PostgreSQL and MariaDB: lists are expanding ``IN`` parameters, the
``offset`` column is quoted by the connection's dialect, and the two statements that differ (the
time now, appending to the JSON history) come from :func:`_dialect_sql`. A change locks its rows
with ``FOR UPDATE SKIP LOCKED`` first and then updates those ids, because MariaDB has no ``UPDATE
... RETURNING``; a record another operator or a restore run holds is left to them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BindParameter, Connection, Row, TextClause, bindparam, text

from kafkaguard.db import columns as C
from kafkaguard.db.history import history_entry
from kafkaguard.db.types import MARIADB_DIALECTS, utc_now


class Store(StrEnum):
    """Which dead-letter store: ``publisher`` or ``listener``."""

    PUBLISHER = "publisher"
    LISTENER = "listener"

    @property
    def table(self) -> str:
        return C.PUBLISHER_DEAD_LETTERS if self is Store.PUBLISHER else C.LISTENER_DEAD_LETTERS

    @property
    def error_class_column(self) -> str:
        return "last_error_class" if self is Store.PUBLISHER else "error_class"

    @property
    def error_message_column(self) -> str:
        return "last_error_message" if self is Store.PUBLISHER else "error_message"


@dataclass(frozen=True)
class Filters:
    """Which records an operator command acts on; ``None`` means any."""

    status: str | None = None
    event_type: str | None = None
    key: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: tuple[int, ...] = ()
    consumer_group: str | None = None

    def where(self, store: Store, conn: Connection) -> tuple[str, dict[str, Any]]:
        """SQL condition and bind parameters for these filters (column names quoted as ``conn``'s
        dialect needs: ``key`` is reserved on MariaDB)."""
        quote = conn.dialect.identifier_preparer.quote
        clauses: list[str] = []
        params: dict[str, Any] = {}
        pairs: list[tuple[str, Any]] = [
            ("status", self.status),
            ("type", self.event_type),
            ("key", self.key),
            (store.error_class_column, self.error_class),
        ]
        if store is Store.LISTENER:
            pairs.append(("consumer_group", self.consumer_group))
        for column, value in pairs:
            if value is not None:
                clauses.append(f"{quote(column)} = :{column}")
                params[column] = value
        if self.since is not None:
            clauses.append("created_at >= :since")
            params["since"] = self.since
        if self.until is not None:
            clauses.append("created_at < :until")
            params["until"] = self.until
        if self.ids:
            clauses.append("id IN :ids")
            params["ids"] = list(self.ids)
        return (" AND ".join(clauses) or "TRUE"), params


def _query(sql: str, params: dict[str, Any]) -> TextClause:
    """``sql`` with every list parameter expanding (``IN :name`` becomes one bind per element on
    both dialects; an empty list matches nothing)."""
    lists: list[BindParameter[Any]] = [
        bindparam(name, expanding=True) for name, value in params.items() if isinstance(value, list)
    ]
    return text(sql).bindparams(*lists) if lists else text(sql)


def _dialect_sql(conn: Connection) -> tuple[str, str]:
    """``(now, history + :entry)`` in ``conn``'s dialect: the UTC time now, with microseconds
    (:class:`~kafkaguard.db.types.utc_now`), and the record's JSON history with the entries in the
    ``entry`` parameter appended."""
    now = str(utc_now().compile(dialect=conn.dialect))
    if conn.dialect.name in MARIADB_DIALECTS:
        return now, "JSON_MERGE_PRESERVE(history, :entry)"
    return now, "history || CAST(:entry AS jsonb)"


def _summary_columns(store: Store, conn: Connection) -> str:
    quote = conn.dialect.identifier_preparer.quote  # offset (both), key and partition (MariaDB) are reserved
    extra = (
        f"consumer_group, topic, {quote('partition')}, {quote('offset')}, reason"
        if store is Store.LISTENER
        else "topic, source"
    )
    return (
        f"id, status, type, {quote('key')}, event_id, attempts, next_attempt_at, created_at, "
        f"{store.error_class_column} AS error_class, {store.error_message_column} AS error_message, {extra}"
    )


def list_records(conn: Connection, store: Store, filters: Filters, *, limit: int = 100) -> list[dict[str, Any]]:
    """Records matching ``filters``, oldest first, at most ``limit``."""
    where, params = filters.where(store, conn)
    sql = f"SELECT {_summary_columns(store, conn)} FROM {store.table} WHERE {where} ORDER BY id LIMIT :limit"  # noqa: S608
    return [dict(r._mapping) for r in conn.execute(_query(sql, params), {**params, "limit": limit})]


def show_record(conn: Connection, store: Store, record_id: int) -> dict[str, Any] | None:
    """Every column of one record (raw bytes shown as hex), or None."""
    row = conn.execute(text(f"SELECT * FROM {store.table} WHERE id = :id"), {"id": record_id}).first()  # noqa: S608
    if row is None:
        return None
    out = dict(row._mapping)
    for name in ("raw_key", "raw_value"):
        if isinstance(out.get(name), bytes | memoryview):
            out[name] = bytes(out[name]).hex()
    return out


def stats(conn: Connection, store: Store, filters: Filters) -> list[dict[str, Any]]:
    """Counts grouped by status and error class (largest first)."""
    where, params = filters.where(store, conn)
    sql = (
        f"SELECT status, coalesce({store.error_class_column}, '-') AS error_class, count(*) AS count, "  # noqa: S608
        f"min(created_at) AS oldest FROM {store.table} WHERE {where} "
        "GROUP BY 1, 2 ORDER BY count DESC, 1, 2"
    )
    return [dict(r._mapping) for r in conn.execute(_query(sql, params), params)]


def history_json(what: str, **fields: Any) -> str:
    """One history entry as a JSON list (to append to a record's history, :func:`_dialect_sql`)."""
    return json.dumps([history_entry(what, **fields)], default=str)


def reset_to_pending(conn: Connection, store: Store, filters: Filters, *, limit: int, by: str) -> list[int]:
    """Make matching open records due now (``failed`` → ``pending``, attempts kept in history).

    Only records whose status is ``pending`` or ``failed`` are reset; ``parked`` ones follow
    their key's head. Returns the ids reset, in id order.
    """
    now, appended = _dialect_sql(conn)
    return _change(
        conn, store, filters, limit=limit, only="status IN ('pending', 'failed')",
        change=f"status = 'pending', attempts = 0, next_attempt_at = {now}, updated_at = {now}, history = {appended}",
        entry=history_json("replay", by=by),
    )  # fmt: skip


def discard(
    conn: Connection, store: Store, filters: Filters, *, limit: int, by: str, reason: str | None = None
) -> list[int]:
    """Mark matching records ``discarded`` (kept for audit; no longer processed nor blocking);
    ``reason``, when given, is kept in the history entry."""
    now, appended = _dialect_sql(conn)
    return _change(
        conn, store, filters, limit=limit, only="status <> 'discarded'",
        change=f"status = 'discarded', updated_at = {now}, history = {appended}",
        entry=history_json("discard", by=by, reason=reason),
    )  # fmt: skip


def _change(
    conn: Connection, store: Store, filters: Filters, *, limit: int, only: str, change: str, entry: str
) -> list[int]:
    """Lock up to ``limit`` records matching ``filters`` and ``only`` (skipping those another
    transaction holds), apply ``change`` to them with ``entry`` appended to their history, and
    return their ids in id order."""
    where, params = filters.where(store, conn)
    pick = (
        f"SELECT id FROM {store.table} WHERE {where} AND {only} "  # noqa: S608 - enum table, fixed clauses
        "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
    )
    ids = sorted(int(r[0]) for r in conn.execute(_query(pick, params), {**params, "limit": limit}))
    if ids:
        update = f"UPDATE {store.table} SET {change} WHERE id IN :ids"  # noqa: S608 - enum table, fixed clauses
        conn.execute(_query(update, {"ids": ids}), {"ids": ids, "entry": entry})
    return ids


def replay_candidates(
    conn: Connection, store: Store, filters: Filters, *, statuses: Sequence[str], limit: int
) -> list[Row[Any]]:
    """Rows ``(id, status, key, type, consumer_group)`` matching ``filters`` with one of ``statuses``,
    oldest first, at most ``limit`` (``consumer_group`` is NULL for the publisher store). Reads only."""
    where, params = filters.where(store, conn)
    group = "consumer_group" if store is Store.LISTENER else "NULL"
    key = conn.dialect.identifier_preparer.quote("key")
    sql = (
        f"SELECT id, status, {key}, type, {group} AS consumer_group FROM {store.table} "  # noqa: S608 - enum table
        f"WHERE {where} AND status IN :statuses ORDER BY id LIMIT :limit"
    )
    values = {**params, "statuses": list(statuses), "limit": limit}
    return list(conn.execute(_query(sql, values), values))


def statuses_of(conn: Connection, store: Store, ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
    """``id → (status, error class)`` of those of ``ids`` that exist."""
    sql = f"SELECT id, status, {store.error_class_column} FROM {store.table} WHERE id IN :ids"  # noqa: S608
    values = {"ids": list(ids)}
    return {int(r[0]): (str(r[1]), r[2]) for r in conn.execute(_query(sql, values), values)}


def open_listener_count(conn: Connection, group: str, keys: Sequence[str]) -> int:
    """Open (pending, failed or parked) listener dead letters of ``group`` for any of ``keys``."""
    if not keys:
        return 0
    sql = (
        f"SELECT count(*) FROM {C.LISTENER_DEAD_LETTERS} "  # noqa: S608 - constant table name
        f"WHERE consumer_group = :g AND {conn.dialect.identifier_preparer.quote('key')} IN :keys AND status IN :open"
    )
    values = {"g": group, "keys": list(keys), "open": list(C.OPEN_STATUSES)}
    return int(conn.execute(_query(sql, values), values).scalar_one())


def listener_group_exists(conn: Connection, group: str) -> bool:
    """Whether ``group`` has any listener dead letter, whatever its status."""
    sql = f"SELECT 1 FROM {C.LISTENER_DEAD_LETTERS} WHERE consumer_group = :g LIMIT 1"  # noqa: S608
    return conn.execute(text(sql), {"g": group}).first() is not None


def listener_groups(conn: Connection, *, limit: int = 20) -> list[str]:
    """Consumer groups that have listener dead letters, sorted, at most ``limit``."""
    sql = f"SELECT DISTINCT consumer_group FROM {C.LISTENER_DEAD_LETTERS} ORDER BY 1 LIMIT :limit"  # noqa: S608
    return [str(r[0]) for r in conn.execute(text(sql), {"limit": limit})]
