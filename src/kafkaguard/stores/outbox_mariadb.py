"""The MariaDB adapter of the relay's outbox port (:class:`~kafkaguard.stores.outbox.OutboxStore`),
on one raw PyMySQL connection (the relay's hot path, like psycopg on PostgreSQL).

It keeps the port's guarantees with MariaDB's means:

- **Shard ownership: named locks.** A shard is owned by the connection holding
  ``GET_LOCK('kafkaguard.relay:<database>:<shard>', 0)``. Named locks belong to the connection, not to
  a transaction, and the server frees them when the connection ends, so a relay that dies (or whose
  connection is cut) frees its shards at once and another instance takes them at its next balance,
  as with PostgreSQL's session advisory locks.
- **Presence: slot locks.** Each instance holds one of :data:`PRESENCE_SLOTS` locks
  ``kafkaguard.relay-presence:<database>:<n>``; :meth:`MariaDbOutbox.live_instances` counts the slots
  in use (``IS_USED_LOCK``).
- **Claims in ``seq`` order, visible rows only, no row lock** (only the shard's owner reads its rows);
  blocked keys and in-flight ids are left out as on PostgreSQL.
- **Settle in one transaction**, each dead letter in a savepoint; a dead letter MariaDB refuses for its
  data goes to ``kafkaguard_last_resort`` as bytes and ASCII, so the row still leaves; anything else
  rolls the whole settle back and the rows stay (ack-then-remove, as on PostgreSQL).
- **No LISTEN/NOTIFY: adaptive polling.** :meth:`MariaDbOutbox.wait_for_work` asks whether an owned
  shard has a row, every :data:`POLL_MIN` seconds at first and twice as long after each empty look,
  up to :data:`POLL_MAX` (reset when work is found): a busy outbox is found within milliseconds, an
  idle one costs one indexed look-up every 100 ms.

Lock names are at most 64 characters: a database name too long for that is replaced by a hash of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import pymysql
import pymysql.cursors

from kafkaguard.db.columns import LAST_RESORT, OPEN_STATUSES, OUTBOX, PUBLISHER_DEAD_LETTERS
from kafkaguard.db.engine import mariadb_connect_kwargs
from kafkaguard.db.login import MARIADB_LOGIN_REFUSALS, mariadb_login_refused
from kafkaguard.db.readiness import RELAY_TABLES, problem
from kafkaguard.stores.outbox import DeadLetter
from kafkaguard.stores.outbox_rows import OutboxRow

logger = logging.getLogger(__name__)

PRESENCE_SLOTS = 256
"""Relay instances that can announce themselves on one outbox (more share the last count)."""
POLL_MIN = 0.002
POLL_MAX = 0.1
"""Seconds between looks for new rows while idle: from POLL_MIN, doubling up to POLL_MAX."""

# MariaDB error numbers that mean "this data is refused", not "the server is away": column cannot be
# null, duplicate, out of range, truncated, bad value, bad string, too long, CHECK (json_valid) failed,
# row too large.
DATA_REFUSALS = frozenset({1048, 1062, 1264, 1265, 1292, 1366, 1406, 1118, 3140, 4025})

CLAIM_COLUMNS = (
    "o.id, o.seq, o.aggregatetype, o.aggregateid, o.type, o.payload, NULLIF(o.headers, '{}'),"
    " o.occurred_at, o.schema_version, o.topic"
)

FROM_OUTBOX_SQL = f"""
INSERT INTO {PUBLISHER_DEAD_LETTERS}
  (event_id, `key`, type, aggregate_type, topic, payload, headers, occurred_at, schema_version,
   source, status, attempts, last_error_class, last_error_message, history)
SELECT o.id, NULLIF(o.aggregateid, ''), o.type,
       CASE WHEN o.aggregatetype <> '' THEN o.aggregatetype ELSE SUBSTRING_INDEX(o.type, '.', 1) END,
       %(topic)s, o.payload, o.headers, o.occurred_at, o.schema_version,
       %(source)s, %(status)s, %(attempts)s, %(last_error_class)s, %(last_error_message)s, %(history)s
FROM {OUTBOX} o WHERE o.id = %(outbox_id)s
ON DUPLICATE KEY UPDATE event_id = VALUES(event_id)
"""  # noqa: S608 - table names are constants
"""The relay's dead letter of an outbox row, copied by MariaDB from the row (the PostgreSQL statement's
twin: nothing of the row passes through Python). Idempotent per event id: a second insert of the same
event changes nothing (``ON DUPLICATE KEY``; not ``INSERT IGNORE``, which would turn a data refusal into
a warning and lose the dead letter)."""

LAST_RESORT_SQL = f"""
INSERT INTO {LAST_RESORT} (store, topic, outbox_id, raw_key, raw_value, raw_headers, error)
SELECT 'publisher', %(topic)s, o.id, CAST(o.aggregateid AS BINARY), CAST(o.payload AS BINARY),
       %(raw_headers)s, %(error)s
FROM {OUTBOX} o WHERE o.id = %(outbox_id)s
"""  # noqa: S608 - the table names are constants


def refused_for_data(exc: BaseException) -> bool:
    """Whether MariaDB refused a statement because of the data (not an outage or a lost connection)."""
    return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in DATA_REFUSALS


def lock_prefix(kind: str, database: str) -> str:
    """``kafkaguard.<kind>:<database>:`` or, when that leaves too little of 64 characters, a hash."""
    prefix = f"kafkaguard.{kind}:{database}:"
    if len(prefix) + 4 > 64:
        prefix = f"kafkaguard.{kind}:{hashlib.sha256(database.encode()).hexdigest()[:24]}:"
    return prefix


def _in(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _row(r: tuple[Any, ...]) -> OutboxRow:
    """An :class:`OutboxRow` from a claim's tuple: ``DATETIME(6)`` holds UTC, read back aware."""
    occurred = None if r[7] is None else r[7].replace(tzinfo=UTC)
    return OutboxRow(str(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], occurred, int(r[8]), r[9])


def _ascii(text: str, limit: int = 4000) -> str:
    return text[:limit].encode("ascii", "backslashreplace").decode("ascii")


class MariaDbOutbox:
    """:class:`~kafkaguard.stores.outbox.OutboxStore` on MariaDB for the database of ``url`` (or
    ``schema``, which names the database on MariaDB); see the module docstring for the guarantees."""

    # OperationalError: the server went away or refused; InterfaceError: the connection is closed;
    # InternalError: a server-side failure mid-statement (e.g. a lock wait ended by a restart).
    outage_errors: tuple[type[Exception], ...] = (
        pymysql.err.OperationalError,
        pymysql.err.InterfaceError,
        pymysql.err.InternalError,
    )

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self._kwargs = mariadb_connect_kwargs(url, schema=schema)
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._connected_once = False
        self._shard_prefix = ""
        self._presence_prefix = ""
        self._owned: set[int] = set()
        self._idle = POLL_MIN

    @property
    def connected(self) -> bool:
        """See :attr:`OutboxStore.connected`."""
        return self._conn is not None

    def connect(self) -> str:
        """See :meth:`OutboxStore.connect` (tables checked, this instance announced by a slot lock)."""
        try:
            conn = pymysql.connect(**self._kwargs, autocommit=True)
        except pymysql.err.OperationalError as exc:
            if exc.args and exc.args[0] in MARIADB_LOGIN_REFUSALS and not self._connected_once:
                raise mariadb_login_refused(self._kwargs, exc.args[0]) from None
            raise
        self._conn = conn
        try:
            database = self._scalar("SELECT DATABASE()")
            self._require_tables(None if database is None else str(database))
            database = str(database)
            self._shard_prefix = lock_prefix("relay", database)
            self._announce(lock_prefix("relay-presence", database))
        except BaseException:
            self.close()
            raise
        self._connected_once = True
        self._owned.clear()
        return database

    def _require_tables(self, database: str | None) -> None:
        rows = self._rows(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"  # noqa: S608
            f" AND table_name IN ({_in(RELAY_TABLES)})",
            list(RELAY_TABLES),
        )
        found = {str(r[0]) for r in rows}
        error = problem(database, database, [t for t in RELAY_TABLES if t not in found])
        if error is not None:
            raise error

    def _announce(self, prefix: str) -> None:
        self._presence_prefix = prefix
        for slot in range(PRESENCE_SLOTS):
            if self._scalar("SELECT GET_LOCK(%s, 0)", (f"{prefix}{slot}",)) == 1:
                return
        logger.warning("more than %d relay instances on this outbox; the fair share counts %d", PRESENCE_SLOTS,
                       PRESENCE_SLOTS)  # fmt: skip

    def close(self) -> None:
        """See :meth:`OutboxStore.close` (the server frees the connection's named locks)."""
        if self._conn is not None:
            with contextlib.suppress(pymysql.err.Error):  # already gone: the server frees its locks either way
                self._conn.close()
        self._conn = None
        self._owned.clear()

    def _connection(self) -> pymysql.connections.Connection[Any]:
        if self._conn is None:
            raise pymysql.err.InterfaceError(0, "the relay's outbox connection is closed")
        return self._conn

    def _rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def _scalar(self, sql: str, params: Any = None) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def live_instances(self) -> int:
        """See :meth:`OutboxStore.live_instances` (presence slots in use)."""
        prefix = self._presence_prefix
        count = self._scalar(
            f"SELECT COUNT(IS_USED_LOCK(CONCAT(%s, seq))) FROM seq_0_to_{PRESENCE_SLOTS - 1}",  # noqa: S608 - a constant
            (prefix,),
        )
        return max(1, int(count or 0))

    def try_lock_shards(self, candidates: Sequence[int], limit: int) -> list[int]:
        """See :meth:`OutboxStore.try_lock_shards` (``GET_LOCK(name, 0)``: never waits)."""
        taken: list[int] = []
        for shard in candidates:
            if len(taken) >= limit:
                break
            if self._scalar("SELECT GET_LOCK(%s, 0)", (f"{self._shard_prefix}{shard}",)) == 1:
                taken.append(int(shard))
        self._owned.update(taken)
        return taken

    def unlock_shards(self, shards: Sequence[int]) -> None:
        """See :meth:`OutboxStore.unlock_shards`."""
        for shard in shards:
            self._rows("SELECT RELEASE_LOCK(%s)", (f"{self._shard_prefix}{shard}",))
            self._owned.discard(int(shard))

    def claim(
        self, shards: Sequence[int], limit: int, *, skip_blocked_keys: bool, in_flight: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """See :meth:`OutboxStore.claim` (no row lock: only the shards' owner reads their rows)."""
        if not shards or limit <= 0:
            return []
        params: list[Any] = [*shards]
        sql = f"SELECT {CLAIM_COLUMNS} FROM {OUTBOX} o WHERE o.shard IN ({_in(shards)}) AND o.published_at IS NULL"  # noqa: S608
        if skip_blocked_keys:
            sql += (
                f" AND NOT EXISTS (SELECT 1 FROM {PUBLISHER_DEAD_LETTERS} d"  # noqa: S608
                f" WHERE d.`key` = o.aggregateid AND d.status IN ({_in(OPEN_STATUSES)}))"
            )
            params += list(OPEN_STATUSES)
        if in_flight:
            sql += f" AND o.id NOT IN ({_in(in_flight)})"
            params += [str(i) for i in in_flight]
        sql += " ORDER BY o.seq LIMIT %s"
        params.append(limit)
        rows = self._rows(sql, params)
        if rows:
            self._idle = POLL_MIN
        return [_row(r) for r in rows]

    def settle(self, dead_letters: Sequence[DeadLetter], done: Sequence[str], *, delete: bool) -> int:
        """See :meth:`OutboxStore.settle`: one transaction, each dead letter in a savepoint."""
        conn = self._connection()
        conn.begin()
        try:
            last_resort = self._insert_dead_letters(dead_letters)
            if done:
                ids = [str(i) for i in done]
                if delete:
                    self._rows(f"DELETE FROM {OUTBOX} WHERE id IN ({_in(ids)})", ids)  # noqa: S608
                else:
                    sql = f"UPDATE {OUTBOX} SET published_at = UTC_TIMESTAMP(6) WHERE id IN ({_in(ids)})"  # noqa: S608
                    self._rows(sql, ids)
            conn.commit()
        except BaseException:
            with contextlib.suppress(pymysql.err.Error):  # the connection is gone: the server rolled back
                conn.rollback()
            raise
        return last_resort

    def _insert_dead_letters(self, letters: Sequence[DeadLetter]) -> int:
        last_resort = 0
        for letter in letters:
            self._rows("SAVEPOINT kg_dead_letter")
            try:
                self._rows(FROM_OUTBOX_SQL, letter.params)
                self._rows("RELEASE SAVEPOINT kg_dead_letter")
                continue
            except pymysql.err.MySQLError as exc:
                if not refused_for_data(exc):
                    raise
                refusal = exc
                self._rows("ROLLBACK TO SAVEPOINT kg_dead_letter")
            topic = str(letter.params.get("topic", ""))
            code = refusal.args[0] if refusal.args else "?"
            logger.error(
                "outbox row %s: its publisher dead letter was refused (%s %s); stored in %s",
                letter.outbox_id, code, type(refusal).__name__, LAST_RESORT,
            )  # fmt: skip
            error = (
                f"publisher dead letter refused: {code} {type(refusal).__name__}: {refusal}"
                f"; the row was rejected for: {letter.params.get('last_error_message', '')}"
            )
            params = {"outbox_id": letter.outbox_id, "topic": _ascii(topic), "error": _ascii(error),
                      "raw_headers": letter.raw_headers}  # fmt: skip
            self._rows(LAST_RESORT_SQL, params)
            last_resort += 1
        return last_resort

    def cleanup_published(self, older_than_seconds: float, limit: int = 1000) -> int:
        """See :meth:`OutboxStore.cleanup_published` (bounded, so quick)."""
        with self._connection().cursor() as cur:
            cur.execute(
                f"DELETE FROM {OUTBOX} WHERE published_at IS NOT NULL"  # noqa: S608
                " AND published_at < UTC_TIMESTAMP(6) - INTERVAL %s MICROSECOND LIMIT %s",
                (int(older_than_seconds * 1_000_000), limit),
            )
            return int(cur.rowcount)

    def backlog(self) -> int:
        """See :meth:`OutboxStore.backlog`."""
        return int(self._scalar(f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL") or 0)  # noqa: S608

    def wait_for_work(self, timeout: float) -> bool:
        """See :meth:`OutboxStore.wait_for_work`: adaptive polling of the owned shards (module docstring)."""
        deadline = time.monotonic() + timeout
        owned = sorted(self._owned)
        if not owned:  # nothing to claim until the next balance: rows of other shards are not ours
            self._scalar("SELECT 1")  # still notice a lost connection while idle, as LISTEN would
            time.sleep(max(0.0, timeout))
            return False
        sql = f"SELECT 1 FROM {OUTBOX} WHERE shard IN ({_in(owned)}) AND published_at IS NULL LIMIT 1"  # noqa: S608
        while True:
            if self._rows(sql, owned):
                self._idle = POLL_MIN
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self._idle, left))  # polling interval: MariaDB has no NOTIFY to wait on
            self._idle = min(POLL_MAX, self._idle * 2)
