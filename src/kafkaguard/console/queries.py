"""The console's reads: failure groups, one page of dead letters (keyset), one record, the chart's buckets.

Read-only, parameterised (values never enter SQL text; table names come from the closed
:class:`~kafkaguard.stores.dead_letter_queries.Store` enum). Pages are keyset-paginated on ``id``
(``WHERE id > :after ORDER BY id LIMIT n``), so page 1000 costs what page 1 does. Every query runs
under a statement timeout set for its transaction only, so a slow page never holds the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from kafkaguard.console.fingerprint import group_id_sql
from kafkaguard.db import columns as C
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, too_deep
from kafkaguard.stores.dead_letter_queries import Store, show_record
from kafkaguard.stores.publisher_dead_letters import RECORD_COLUMNS

PAGE_SIZE = 50
OPEN = ("pending", "failed")  # the statuses of a failure group by default: parked records follow their head


@dataclass(frozen=True)
class Query:
    """What a page shows: a store and filters, each ``None`` for any (the URL's query string).

    ``status`` ``"open"`` means pending or failed; ``group`` is a failure group's id
    (:mod:`kafkaguard.console.fingerprint`).
    """

    store: Store = Store.LISTENER
    status: str | None = "open"
    group: str | None = None
    event_type: str | None = None
    key: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int = 0  # keyset: ids greater than this

    def params(self) -> dict[str, str]:
        """The query string of these filters (the stable URL of a page), without ``after``."""
        pairs = {
            "store": self.store.value, "status": self.status or "any", "group": self.group, "type": self.event_type,
            "key": self.key, "error_class": self.error_class,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }  # fmt: skip
        return {k: v for k, v in pairs.items() if v}


def error_class_sql(store: Store) -> str:
    """A record's error class as groups see it (listener: the reason when no exception was caught)."""
    return "coalesce(last_error_class, '-')" if store is Store.PUBLISHER else "coalesce(error_class, reason)"


def frame_sql(store: Store) -> str:
    """A record's throwing frame: the stored ``stack_frame`` (publisher records keep no stack: ``-``)."""
    return "'-'" if store is Store.PUBLISHER else "stack_frame"


def where(query: Query) -> tuple[str, dict[str, Any]]:
    """SQL condition and parameters of ``query``'s filters (``after`` excluded)."""
    store = query.store
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if query.status == "open":
        clauses.append("status = ANY(:statuses)")
        params["statuses"] = list(OPEN)
    elif query.status:
        clauses.append("status = :status")
        params["status"] = query.status
    for column, value in (("type", query.event_type), ("key", query.key)):
        if value is not None:
            clauses.append(f"{column} = :{column}")
            params[column] = value
    if query.error_class is not None:
        clauses.append(f"{error_class_sql(store)} = :error_class")
        params["error_class"] = query.error_class
    if query.group is not None:
        clauses.append(f"{group_id_sql(error_class_sql(store), frame_sql(store))} = :group")
        params["group"] = query.group
    if query.since is not None:
        clauses.append("created_at >= :since")
        params["since"] = query.since
    if query.until is not None:
        clauses.append("created_at < :until")
        params["until"] = query.until
    return (" AND ".join(clauses) or "TRUE"), params


def _bounded(conn: Connection, timeout_ms: int) -> None:
    conn.execute(text("SELECT set_config('statement_timeout', :t, true)"), {"t": str(timeout_ms)})


def _sort_in_memory(conn: Connection) -> None:
    # count(DISTINCT) and array_agg(DISTINCT) sort every matching row; PostgreSQL's default 4 MB
    # spills 100,000 dead letters to disk. Transaction-local, so the pool's other users keep theirs.
    conn.execute(text("SELECT set_config('work_mem', '64MB', true)"))


@dataclass(frozen=True)
class FailureGroup:
    """Records that failed the same way: error class and throwing frame, with their extent."""

    group: str
    error_class: str
    frame: str
    count: int
    first_seen: datetime
    last_seen: datetime
    keys: int
    types: list[str] = field(default_factory=list)


def failure_groups(conn: Connection, query: Query, *, timeout_ms: int = 5000, limit: int = 200) -> list[FailureGroup]:
    """The failure groups of ``query``'s records, largest first (at most ``limit``, 10 types each)."""
    _bounded(conn, timeout_ms)
    _sort_in_memory(conn)
    store = query.store
    cond, params = where(Query(**{**query.__dict__, "group": None}))
    # Group by class and frame first (one regexp per row), then name each group by its id.
    sql = (
        f"SELECT {group_id_sql('g.error_class', 'g.frame')} AS grp, g.* FROM ("  # noqa: S608 - enum table, constants
        f"SELECT {error_class_sql(store)} AS error_class, {frame_sql(store)} AS frame, count(*) AS count, "
        "min(created_at) AS first_seen, max(created_at) AS last_seen, count(DISTINCT key) AS keys, "
        "(array_agg(DISTINCT coalesce(type, '-')))[1:10] AS types "
        f"FROM {store.table} WHERE {cond} GROUP BY 1, 2) g ORDER BY g.count DESC, g.error_class, g.frame LIMIT :limit"
    )
    rows = conn.execute(text(sql), {**params, "limit": limit})
    groups = []
    for row in rows:
        m = row._mapping  # "count" is also a tuple method: read columns by name
        group = FailureGroup(
            group=str(m["grp"]), error_class=str(m["error_class"]), frame=str(m["frame"]), count=int(m["count"]),
            first_seen=m["first_seen"], last_seen=m["last_seen"], keys=int(m["keys"]), types=list(m["types"] or []),
        )  # fmt: skip
        groups.append(group)
    if query.group is not None:
        groups = [g for g in groups if g.group == query.group]
    return groups


def page(conn: Connection, query: Query, *, size: int = PAGE_SIZE, timeout_ms: int = 5000) -> list[dict[str, Any]]:
    """At most ``size`` + 1 summaries of ``query``'s records with ids over ``query.after``, in id order
    (the extra one tells the caller there is a next page)."""
    _bounded(conn, timeout_ms)
    store = query.store
    cond, params = where(query)
    extra = 'consumer_group, topic, partition, "offset", reason' if store is Store.LISTENER else "topic, source"
    sql = (
        f"SELECT id, status, type, key, attempts, created_at, {error_class_sql(store)} AS error_class, "  # noqa: S608
        f"{frame_sql(store)} AS frame, {extra} FROM {store.table} WHERE {cond} AND id > :after "
        "ORDER BY id LIMIT :size"
    )
    return [dict(r._mapping) for r in conn.execute(text(sql), {**params, "after": query.after, "size": size + 1})]


EXPORT_LIMIT = 10_000


def export_rows(conn: Connection, query: Query, *, limit: int = EXPORT_LIMIT) -> list[dict[str, Any]]:
    """``query``'s records with ids over ``query.after``, in id order, at most ``limit``, each with its
    payload and headers as stored (publisher: JSON text; listener: the raw value's bytes) for export."""
    store = query.store
    cond, params = where(query)
    payload = "payload::text AS payload" if store is Store.PUBLISHER else "raw_value AS payload"
    extra = 'consumer_group, topic, partition, "offset"' if store is Store.LISTENER else "topic"
    sql = (
        f"SELECT id, status, type, key, event_id, attempts, created_at, {error_class_sql(store)} AS error_class, "  # noqa: S608
        f"{frame_sql(store)} AS frame, {extra}, {payload}, headers::text AS headers FROM {store.table} "
        f"WHERE {cond} AND id > :after ORDER BY id LIMIT :limit"
    )
    return [dict(r._mapping) for r in conn.execute(text(sql), {**params, "after": query.after, "limit": limit})]


def group_ids(conn: Connection, query: Query, *, limit: int) -> list[int]:
    """Ids of ``query``'s records (open ones, whatever ``query.status`` says), oldest first, at most ``limit``."""
    cond, params = where(Query(**{**query.__dict__, "status": "open"}))
    sql = f"SELECT id FROM {query.store.table} WHERE {cond} ORDER BY id LIMIT :limit"  # noqa: S608
    return [int(r[0]) for r in conn.execute(text(sql), {**params, "limit": limit})]


def decode_json_text(value: str | bytes | None) -> Any:
    """Parsed JSON of ``value``, or None when it is absent, not JSON, or nests too deep to parse safely."""
    if value is None:
        return None
    if too_deep(value, DEFAULT_MAX_PAYLOAD_DEPTH):
        return None
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return None


PUBLISHER_RECORD_SQL = (
    f"SELECT {RECORD_COLUMNS}, history::text AS history, restored_at, restored_by "  # noqa: S608 - constants
    f"FROM {C.PUBLISHER_DEAD_LETTERS} WHERE id = :id"
)
"""A publisher record with its JSON as text: the driver's json.loads recurses, and a payload may nest
deeper than Python can parse (the relay copies it from the outbox without decoding)."""


def record(conn: Connection, store: Store, record_id: int) -> dict[str, Any] | None:
    """One record's columns with ``payload_text`` (the payload as stored: publisher JSON, listener raw
    bytes as UTF-8 when they are), ``payload_hex`` and ``frame``; JSON columns decoded only when safe."""
    payload_text: str | None
    if store is Store.PUBLISHER:
        found = conn.execute(text(PUBLISHER_RECORD_SQL), {"id": record_id}).first()
        if found is None:
            return None
        row = dict(found._mapping)
        payload_text = str(row.pop("payload"))
        raw = payload_text.encode()
        row["headers"] = decode_json_text(row["headers"]) or {}
        row["history"] = decode_json_text(row["history"]) or []
    else:
        shown = show_record(conn, store, record_id)
        if shown is None:
            return None
        row = shown
        raw = bytes.fromhex(row["raw_value"]) if row.get("raw_value") else b""
        payload_text = raw.decode("utf-8", errors="replace") if raw else None
    row["payload_text"] = payload_text
    row["payload_hex"] = raw.hex()
    frame = f"SELECT {frame_sql(store)} FROM {store.table} WHERE id = :id"  # noqa: S608 - enum table
    row["frame"] = conn.execute(text(frame), {"id": record_id}).scalar_one()
    return row


def parked_behind(conn: Connection, head: dict[str, Any], *, limit: int = 200) -> list[dict[str, Any]]:
    """The parked listener records of ``head``'s consumer group and key, in arrival (id) order."""
    if head.get("key") is None or head.get("consumer_group") is None:
        return []
    sql = (
        f'SELECT id, type, event_id, topic, partition, "offset", created_at FROM {C.LISTENER_DEAD_LETTERS} '  # noqa: S608
        "WHERE consumer_group = :g AND key = :k AND status = 'parked' AND id > :id ORDER BY id LIMIT :limit"
    )
    params = {"g": head["consumer_group"], "k": head["key"], "id": head["id"], "limit": limit}
    return [dict(r._mapping) for r in conn.execute(text(sql), params)]


@dataclass(frozen=True)
class Bucket:
    """One hour of the chart: dead letters that arrived, and that were restored, in it."""

    start: datetime
    arrived: int
    restored: int


_EVENTS_SQL = (
    "SELECT created_at AS at, 1 AS a, 0 AS r FROM {t} WHERE created_at >= now() - make_interval(hours => :h) "
    "UNION ALL SELECT restored_at, 0, 1 FROM {t} WHERE restored_at >= now() - make_interval(hours => :h)"
)


def hourly(conn: Connection, *, hours: int = 24, timeout_ms: int = 5000) -> list[Bucket]:
    """Arrivals and restores of both stores per hour over the last ``hours`` hours, oldest first."""
    _bounded(conn, timeout_ms)
    parts = " UNION ALL ".join(_EVENTS_SQL.format(t=t) for t in (C.PUBLISHER_DEAD_LETTERS, C.LISTENER_DEAD_LETTERS))
    sql = (
        "SELECT s.hour, coalesce(sum(e.a), 0) AS arrived, coalesce(sum(e.r), 0) AS restored FROM "  # noqa: S608
        "generate_series(date_trunc('hour', now()) - make_interval(hours => :h - 1), date_trunc('hour', now()), "
        "interval '1 hour') AS s(hour) "
        f"LEFT JOIN ({parts}) e ON date_trunc('hour', e.at) = s.hour GROUP BY s.hour ORDER BY s.hour"
    )
    return [Bucket(r.hour, int(r.arrived), int(r.restored)) for r in conn.execute(text(sql), {"h": hours})]


@dataclass(frozen=True)
class Backlog:
    """One schema's outbox: rows not yet published, and the age of the oldest of them (seconds)."""

    schema: str
    rows: int
    oldest_age_seconds: float


OUTBOX_SCHEMAS_SQL = """
SELECT table_schema FROM information_schema.tables
WHERE table_name = :table AND table_type = 'BASE TABLE' AND has_schema_privilege(table_schema, 'USAGE')
  AND has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), 'SELECT')
ORDER BY 1 LIMIT :limit
"""
"""Schemas with an outbox this login may read (another service's, without the grant, is left out)."""


def backlog_per_schema(conn: Connection, *, limit: int = 20, timeout_ms: int = 5000) -> list[Backlog]:
    """The outbox backlog of every schema (at most ``limit``) that holds an ``outbox`` table: services
    sharing one database each keep theirs. Schema names are quoted by the dialect, never pasted raw."""
    _bounded(conn, timeout_ms)
    schemas = [str(r[0]) for r in conn.execute(text(OUTBOX_SCHEMAS_SQL), {"table": C.OUTBOX, "limit": limit})]
    quote = conn.dialect.identifier_preparer.quote
    out = []
    for schema in schemas:
        sql = (
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "  # noqa: S608 - quoted
            f"FROM {quote(schema)}.{quote(C.OUTBOX)} WHERE published_at IS NULL"
        )
        count, age = conn.execute(text(sql)).one()
        out.append(Backlog(schema, int(count), float(age)))
    return sorted(out, key=lambda b: (-b.rows, b.schema))


def relay_rate(conn: Connection, *, minutes: int = 5) -> float:
    """Outbox rows published per second over the last ``minutes`` minutes (index ix_outbox_published)."""
    sql = f"SELECT count(*) FROM {C.OUTBOX} WHERE published_at >= now() - make_interval(mins => :m)"  # noqa: S608
    return int(conn.execute(text(sql), {"m": minutes}).scalar_one()) / (minutes * 60)
