"""The console's audit log (``kafkaguard_console_audit``, migration 0004): one row per write, refusals included.

Who (the operator's name and address), when, what (action, store, the ids asked for), how many
records were asked for and changed, the outcome (``done``, ``cancelled``, ``refused``, ``failed``) and the
operator's reason. Written in its own transaction after the action, so a refused or failed
action is recorded too; never updated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from kafkaguard.db import columns as C

MAX_IDS = 1000  # ids kept per row; a bulk action over more keeps the count and the first ids


@dataclass(frozen=True)
class Entry:
    """One audited action."""

    actor: str
    remote: str | None
    action: str
    store: str | None
    outcome: str
    requested: int = 0
    changed: int = 0
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


INSERT_SQL = f"""
INSERT INTO {C.CONSOLE_AUDIT} (actor, remote, action, store, outcome, requested, changed, reason, detail)
VALUES (:actor, :remote, :action, :store, :outcome, :requested, :changed, :reason, CAST(:detail AS jsonb))
"""  # noqa: S608 - constant table name


def write(engine: Engine, entry: Entry) -> None:
    """Append ``entry`` in a transaction of its own."""
    detail = dict(entry.detail)
    if isinstance(detail.get("ids"), list):
        detail["ids"] = detail["ids"][:MAX_IDS]
    params = {**entry.__dict__, "detail": json.dumps(detail, default=str)}
    with engine.begin() as conn:
        conn.execute(text(INSERT_SQL), params)


def recent(conn: Connection, *, before: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Audit rows newest first, with ids below ``before`` (keyset), at most ``limit``."""
    sql = (
        f"SELECT id, at, actor, remote, action, store, outcome, requested, changed, reason, detail::text AS detail "  # noqa: S608
        f"FROM {C.CONSOLE_AUDIT} WHERE (CAST(:before AS bigint) IS NULL OR id < :before) ORDER BY id DESC LIMIT :limit"
    )
    return [dict(r._mapping) for r in conn.execute(text(sql), {"before": before, "limit": limit})]
