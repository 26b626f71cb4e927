"""The outbox (table ``outbox``): the writer the publisher uses, the port the relay needs, and the
PostgreSQL adapter of that port (raw psycopg 3, the relay's hot path).

Writer guarantee (:func:`add_events`): the event rows commit or roll back with the caller's
business writes, so a rolled-back transaction publishes nothing and a committed one is never lost.

Relay-side guarantees of every :class:`OutboxStore`:

- a shard (rows by hash of the key, column ``shard``) is owned by at most one live store at a time
  (:meth:`~OutboxStore.try_lock_shards`), and only its owner claims its rows;
- :meth:`~OutboxStore.claim` returns visible unpublished rows in ``seq`` order (never "above a mark",
  see DESIGN.md "Pitfalls"), skipping keys that have an open publisher dead letter when asked;
- :meth:`~OutboxStore.settle` stores dead letters copied from their rows and removes (or marks)
  the settled rows in ONE transaction: either all of it commits or the rows stay.

PostgreSQL specifics: locks are session-level advisory locks on the work connection, keyed by
``(hash of 'kafkaguard.relay:<schema>', shard)``: they vanish with the connection, so a relay that
dies frees its shards at once. A second key space, ``(hash of 'kafkaguard.relay-presence:<schema>',
backend pid)``, marks each live instance so that instances can count each other in ``pg_locks``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import LAST_RESORT, OPEN_STATUSES, OUTBOX, OUTBOX_NOTIFY_CHANNEL, PUBLISHER_DEAD_LETTERS
from kafkaguard.db.login import login_refused, refused_reason
from kafkaguard.db.readiness import RELAY_TABLES, require_tables_psycopg
from kafkaguard.db.tables import outbox
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, EnvelopeError, Event, too_deep
from kafkaguard.headers import TRACEPARENT
from kafkaguard.stores.outbox_rows import CLAIM_COLUMNS, OutboxRow
from kafkaguard.stores.publisher_dead_letters import FROM_OUTBOX_SQL

Conn = psycopg.Connection[Any]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------- writer

# A NUL escape in JSON text that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def check_storable(event: Event) -> None:
    """Raise :class:`EnvelopeError` if ``event`` cannot be stored in the outbox as it is.

    PostgreSQL's ``jsonb`` refuses a NUL character and an unpaired surrogate in a string, and
    consumers refuse a payload nested deeper than :data:`~kafkaguard.envelope.DEFAULT_MAX_PAYLOAD_DEPTH`.
    Checked when the event is added, so the caller gets a clear error at once (an HTTP layer
    answers 400) instead of a database error at commit.
    """
    try:
        text = json.dumps([event.payload, dict(event.headers)], ensure_ascii=False, default=str)
    except RecursionError as exc:
        raise EnvelopeError(f"event {event.type!r}: payload nests too deeply to encode") from exc
    except (TypeError, ValueError) as exc:
        raise EnvelopeError(f"event {event.type!r}: payload is not JSON-serialisable ({exc})") from exc
    if _NUL_ESCAPE.search(text):
        raise EnvelopeError(
            f"event {event.type!r} (key {event.key[:80]!r}): a payload or header string contains a NUL character,"
            " which PostgreSQL cannot store; remove it or encode the value (e.g. base64)"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EnvelopeError(
            f"event {event.type!r} (key {event.key[:80]!r}): a payload string holds an unpaired surrogate"
            " (not valid Unicode text)"
        ) from exc
    if too_deep(text, DEFAULT_MAX_PAYLOAD_DEPTH + 1):  # +1: the list wrapped around the payload above
        raise EnvelopeError(
            f"event {event.type!r}: payload nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels; consumers refuse it"
        )


def outbox_row(event: Event, *, topic: str | None = None) -> dict[str, Any]:
    """The outbox row of ``event`` (Debezium's columns: id = event_id, aggregateid = key); raise
    :class:`EnvelopeError` when the event cannot be stored (:func:`check_storable`)."""
    check_storable(event)
    return {
        "id": event.event_id,
        "aggregatetype": event.aggregate_type,
        "aggregateid": event.key,
        "type": event.type,
        "payload": event.payload,
        "headers": dict(event.headers),
        "occurred_at": event.occurred_at,
        "schema_version": event.schema_version,
        "topic": topic,
        "traceparent": event.headers.get(TRACEPARENT),
    }


def add_events(
    session: Session | Connection,
    events: Iterable[Event],
    *,
    topic: str | None = None,
    delete_after_insert: bool = False,
) -> None:
    """Insert ``events`` into the outbox in the transaction of ``session`` (which the caller commits).

    Events are inserted in the order given, so events of one key keep that order.
    ``delete_after_insert`` is for Debezium as the relay: the rows are deleted again in the same
    transaction, so the table stays empty while the inserts still reach the WAL that Debezium
    reads (kafkaguard's own relay then never sees them: use it only with ``relay.kind=debezium``).
    """
    rows = [outbox_row(e, topic=topic) for e in events]
    if rows:
        session.execute(insert(outbox), rows)
        if delete_after_insert:
            session.execute(delete(outbox).where(outbox.c.id.in_([r["id"] for r in rows])))


async def add_events_async(
    session: AsyncSession | AsyncConnection,
    events: Iterable[Event],
    *,
    topic: str | None = None,
    delete_after_insert: bool = False,
) -> None:
    """Asyncio form of :func:`add_events`: the same core, run on the session's sync side."""
    await session.run_sync(add_events, list(events), topic=topic, delete_after_insert=delete_after_insert)


def add_event(session: Session | Connection, event: Event, *, topic: str | None = None) -> None:
    """Insert one event into the outbox in the caller's transaction (``outbox`` mode).

    The row commits or rolls back with the caller's business writes: a rolled-back transaction
    publishes nothing, a committed one is never lost; the relay publishes it later in per-key
    commit order.
    """
    add_events(session, [event], topic=topic)


async def add_event_async(session: AsyncSession | AsyncConnection, event: Event, *, topic: str | None = None) -> None:
    """Asyncio form of :func:`add_event`."""
    await add_events_async(session, [event], topic=topic)


class OutboxWriter(Protocol):
    """How the publisher adds events to an outbox in the caller's transaction (:func:`add_events`)."""

    def add(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """Add ``events`` so that they become visible to the relay exactly when ``session`` commits."""

    async def add_async(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """:meth:`add` with an ``AsyncSession`` (or ``AsyncConnection``)."""


class PostgresOutboxWriter:
    """:class:`OutboxWriter` into the ``outbox`` table through the caller's SQLAlchemy session.

    ``delete_after_insert``: for Debezium as the relay (see :func:`add_events`).
    """

    def __init__(self, *, delete_after_insert: bool = False) -> None:
        self.delete_after_insert = delete_after_insert

    def add(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """See :meth:`OutboxWriter.add`."""
        add_events(session, events, topic=topic, delete_after_insert=self.delete_after_insert)

    async def add_async(self, session: Any, events: Iterable[Event], *, topic: str | None = None) -> None:
        """See :meth:`OutboxWriter.add_async`."""
        await add_events_async(session, events, topic=topic, delete_after_insert=self.delete_after_insert)


# ---------------------------------------------------------------------------------------------- port


@dataclass(frozen=True)
class DeadLetter:
    """One publisher dead letter to copy from its outbox row: the row's id, the :data:`FROM_OUTBOX_SQL`
    parameters (:func:`~kafkaguard.stores.publisher_dead_letters.outbox_params`), and for the last
    resort the Kafka headers the row would have had (``raw_headers`` encoding) or None."""

    outbox_id: str
    params: dict[str, Any]
    raw_headers: bytes | None = None


class OutboxStore(Protocol):
    """What the relay needs of the outbox (see the module docstring for the guarantees).

    ``outage_errors``: the exceptions that mean "the store is away now" (the relay backs off,
    calls :meth:`close` and reconnects); anything else is a bug or a refusal and propagates.
    """

    outage_errors: tuple[type[Exception], ...]

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` succeeded and :meth:`close` was not called since."""

    def connect(self) -> str:
        """Open the store (check its tables, announce this instance); return a name for logs.

        Owns no shard afterwards. Raises :class:`~kafkaguard.errors.SchemaNotReadyError` or
        :class:`~kafkaguard.errors.AuthenticationError` when it can never work as configured.
        """

    def close(self) -> None:
        """Close the store; every shard this instance held is free for others."""

    def live_instances(self) -> int:
        """How many relay instances share this outbox now (this one included)."""

    def try_lock_shards(self, candidates: Sequence[int], limit: int) -> list[int]:
        """Take up to ``limit`` of ``candidates`` that no one holds (never waits); return those taken."""

    def unlock_shards(self, shards: Sequence[int]) -> None:
        """Give ``shards`` back (between rounds only: none of their rows is in flight)."""

    def claim(
        self, shards: Sequence[int], limit: int, *, skip_blocked_keys: bool, in_flight: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """The oldest visible unpublished rows of ``shards`` in ``seq`` order, except ``in_flight`` ids."""

    def settle(self, dead_letters: Sequence[DeadLetter], done: Sequence[str], *, delete: bool) -> int:
        """In one transaction: store ``dead_letters`` (idempotent per event), then remove (``delete``)
        or mark published the rows ``done``; return how many dead letters went to the last resort."""

    def cleanup_published(self, older_than_seconds: float, limit: int = 1000) -> int:
        """Delete at most ``limit`` rows marked published more than ``older_than_seconds`` ago."""

    def backlog(self) -> int:
        """Unpublished rows (all shards)."""

    def wait_for_work(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for new rows to be announced; return whether one was."""


# ---------------------------------------------------------------------------------------------- SQL


def namespaces(conn: Conn) -> tuple[int, int, str]:
    """(shard lock space, presence lock space, schema) for the connection's current schema."""
    row = conn.execute(
        "SELECT hashtext('kafkaguard.relay:' || current_schema()) & 2147483647,"
        " hashtext('kafkaguard.relay-presence:' || current_schema()) & 2147483647, current_schema()"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), str(row[2])


def prepare_session(conn: Conn) -> None:
    """Session settings of the relay's work connection (call once per connection).

    Planner settings only: the rows a statement reads and their order are the same. The connection
    runs nothing but the relay's statements, none of which wants a sort or parallel workers.

    ``enable_sort = off`` makes the claim walk the ``seq`` index instead of sorting every owned row:
    without fresh statistics (a backlog that grew faster than autovacuum analyses it, e.g. during a
    Kafka outage) the planner otherwise reads the whole backlog and sorts it on disk in each round,
    which made draining quadratic (180 ms per claim at 100,000 rows, 0.6 ms this way).

    ``max_parallel_workers_per_gather = 0``: with the same stale statistics the planner splits the
    claim's index walk over two parallel workers and merges their rows (Gather Merge). Starting the
    workers costs more than the 500-row walk itself: 7.7 ms per claim against 1.5 ms serial on a
    200,000-row backlog (measured), and in the relay the claim was 60 % of its wall time.
    """
    conn.execute("SET enable_sort = off")
    conn.execute("SET max_parallel_workers_per_gather = 0")


def claim_sql(*, skip_blocked_keys: bool) -> str:
    """The claim query (psycopg parameters of :func:`claim_params`); see :func:`claim`."""
    blocked = (
        f" AND NOT EXISTS (SELECT 1 FROM {PUBLISHER_DEAD_LETTERS} d"  # noqa: S608 - a table name constant
        " WHERE d.key = o.aggregateid AND d.status = ANY(%(open)s))"
        if skip_blocked_keys
        else ""
    )
    return (
        f"SELECT {CLAIM_COLUMNS} FROM {OUTBOX} o WHERE o.shard = ANY(%(shards)s) AND o.published_at IS NULL"  # noqa: S608
        f"{blocked} AND o.id <> ALL(%(in_flight)s::uuid[]) ORDER BY o.seq LIMIT %(limit)s"
    )


def claim_params(shards: Sequence[int], limit: int, in_flight: Sequence[Any] = ()) -> dict[str, Any]:
    """Parameters of :func:`claim_sql`.

    ``in_flight`` travels as one array literal: psycopg would dump a list of UUIDs element by
    element in Python (a millisecond per 500-row claim).
    """
    return {
        "shards": list(shards),
        "limit": limit,
        "open": list(OPEN_STATUSES),
        "in_flight": uuid_array(in_flight),
    }


def uuid_array(ids: Sequence[Any]) -> str:
    """``ids`` as one PostgreSQL array literal (cast with ``::uuid[]``); see :func:`claim_params`."""
    return "{" + ",".join(str(i) for i in ids) + "}"


def claim(
    conn: Conn, shards: Sequence[int], limit: int, *, skip_blocked_keys: bool, in_flight: Sequence[Any] = ()
) -> list[OutboxRow]:
    """Return the oldest visible unpublished rows of ``shards`` in ``seq`` order, except ``in_flight``.

    Visible rows, never "seq above a mark": a transaction that took a lower seq may commit later,
    and is claimed when it does. ``in_flight``: ids of a round produced and not yet settled (the
    relay claims its next round while the broker acknowledges the last one).

    No row lock: the rows of a shard are read, published and removed only through the connection
    that holds the shard's advisory lock, so no one else claims them; if that connection is lost
    the rows stay and the shard's next owner publishes them again.
    """
    # prepare=False: planned with the actual shards and ids each time. psycopg would otherwise
    # prepare the statement after five runs and PostgreSQL switch to a generic plan, which runs
    # this claim at half the speed (8 ms instead of 4 ms per 500 rows, measured).
    sql = claim_sql(skip_blocked_keys=skip_blocked_keys)
    rows = conn.execute(sql, claim_params(shards, limit, in_flight), prepare=False)
    return list(map(OutboxRow._make, rows.fetchall()))


def finish(conn: Conn, ids: Sequence[Any], *, delete: bool) -> None:
    """Remove (or mark ``published_at`` on) rows whose delivery, or dead letter, is settled."""
    if not ids:
        return
    literal = uuid_array(ids)
    if delete:
        conn.execute(f"DELETE FROM {OUTBOX} WHERE id = ANY(%s::uuid[])", (literal,))  # noqa: S608
    else:
        conn.execute(f"UPDATE {OUTBOX} SET published_at = now() WHERE id = ANY(%s::uuid[])", (literal,))  # noqa: S608


LAST_RESORT_SQL = f"""
INSERT INTO {LAST_RESORT} (store, topic, outbox_id, raw_key, raw_value, raw_headers, error)
SELECT 'publisher', %(topic)s, o.id, convert_to(o.aggregateid, 'UTF8'), convert_to(o.payload::text, 'UTF8'),
       %(raw_headers)s, %(error)s
FROM {OUTBOX} o WHERE o.id = %(outbox_id)s::uuid
"""  # noqa: S608 - the table names are constants
"""The last-resort row of an outbox row whose publisher dead letter PostgreSQL refused: bytes and ASCII only."""

# SQLSTATE classes that mean "this data is refused", not "the database is away": data exception,
# integrity constraint violation, program limit exceeded (e.g. a value too large for an index).
_DATA_REFUSALS = ("22", "23", "54")


def refused_for_data(exc: psycopg.Error) -> bool:
    """Whether PostgreSQL refused a statement because of the data (not an outage or a lost connection)."""
    state = exc.sqlstate
    return state is not None and state[:2] in _DATA_REFUSALS


def _ascii(text: str, limit: int = 4000) -> str:
    return text[:limit].encode("ascii", "backslashreplace").decode("ascii")


def insert_dead_letters(conn: Conn, letters: Sequence[DeadLetter]) -> int:
    """Store publisher dead letters (idempotent per event id) in the current transaction.

    Each insert runs in a savepoint: if PostgreSQL refuses one for a data reason
    (:func:`refused_for_data`), a ``kafkaguard_last_resort`` row (the row's key and payload as
    bytes, the refusal as ASCII text) is written instead, so the outbox row still leaves. Any other
    error (the connection is gone) propagates: the transaction rolls back and the rows stay.
    Returns how many went to the last resort.
    """
    last_resort = 0
    for letter in letters:
        try:
            with conn.transaction():
                conn.execute(FROM_OUTBOX_SQL, letter.params)
            continue
        except psycopg.Error as exc:
            if not refused_for_data(exc):
                raise
            refusal = exc
        topic = str(letter.params.get("topic", ""))
        logger.error(
            "outbox row %s (event %s, topic %s): its publisher dead letter was refused (%s %s); stored in %s",
            letter.outbox_id,
            letter.outbox_id,
            _ascii(topic, 200),
            refusal.sqlstate,
            type(refusal).__name__,
            LAST_RESORT,
        )
        error = (
            f"publisher dead letter refused: {refusal.sqlstate} {type(refusal).__name__}: {refusal}"
            f"; the row was rejected for: {letter.params.get('last_error_message', '')}"
        )
        with conn.transaction():
            params = {"outbox_id": letter.outbox_id, "topic": _ascii(topic), "error": _ascii(error)}
            conn.execute(LAST_RESORT_SQL, {**params, "raw_headers": letter.raw_headers})
        last_resort += 1
    return last_resort


# ---------------------------------------------------------------------------------------------- adapter


class PostgresOutbox:
    """:class:`OutboxStore` on two psycopg connections of ``conninfo`` (a libpq string whose
    search_path starts with kafkaguard's schema): a work connection (shard locks, claims, settles;
    autocommit, with explicit transactions) and a LISTEN connection (wake-ups on NOTIFY).

    ``schema``: the schema whose tables are checked at :meth:`connect` (None: the search_path's first).
    A login refused before the first successful connection raises
    :class:`~kafkaguard.errors.AuthenticationError` (no outage: retrying cannot help).
    """

    outage_errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, conninfo: str, *, schema: str | None = None) -> None:
        self.conninfo = conninfo
        self.schema = schema
        self._work: Conn | None = None
        self._listen: Conn | None = None
        self._spaces = (0, 0)
        self._connected_once = False

    @property
    def connected(self) -> bool:
        """See :attr:`OutboxStore.connected`."""
        return self._work is not None and self._listen is not None

    def connect(self) -> str:
        """See :meth:`OutboxStore.connect`."""
        try:
            self._work = psycopg.connect(self.conninfo, autocommit=True)
        except psycopg.Error as exc:
            refused = refused_reason(exc)
            if refused is not None and not self._connected_once:
                raise login_refused(self.conninfo, refused) from None
            raise
        try:  # a schema that was never upgraded fails here, in one line, not as a TypeError later
            require_tables_psycopg(self._work, self.schema, RELAY_TABLES)
            shard_space, presence_space, schema = namespaces(self._work)
            self._spaces = (shard_space, presence_space)
            self._work.execute("SELECT pg_advisory_lock(%s, pg_backend_pid())", (presence_space,))
            prepare_session(self._work)
            self._listen = psycopg.connect(self.conninfo, autocommit=True)
            self._listen.execute(f"LISTEN {OUTBOX_NOTIFY_CHANNEL}")
        except BaseException:
            self.close()
            raise
        self._connected_once = True
        return schema

    def close(self) -> None:
        """See :meth:`OutboxStore.close`."""
        for conn in (self._work, self._listen):
            if conn is not None:
                conn.close()
        self._work = self._listen = None

    def _conn(self) -> Conn:
        if self._work is None:
            raise psycopg.OperationalError("the relay's outbox connection is closed")
        return self._work

    def live_instances(self) -> int:
        """See :meth:`OutboxStore.live_instances` (presence locks in ``pg_locks``)."""
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
                " AND classid::bigint = %s"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                (self._spaces[1],),
            )
            .fetchone()
        )
        return int(row[0]) if row else 1

    def try_lock_shards(self, candidates: Sequence[int], limit: int) -> list[int]:
        """See :meth:`OutboxStore.try_lock_shards`."""
        if limit <= 0 or not candidates:
            return []
        # LIMIT stops the scan once enough locks are taken, so no more shards are locked than asked for.
        rows = (
            self._conn()
            .execute(
                "SELECT s FROM unnest(%s::int[]) AS s WHERE pg_try_advisory_lock(%s, s) LIMIT %s",
                (list(candidates), self._spaces[0], limit),
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows]

    def unlock_shards(self, shards: Sequence[int]) -> None:
        """See :meth:`OutboxStore.unlock_shards`."""
        if shards:
            self._conn().execute(
                "SELECT pg_advisory_unlock(%s, s) FROM unnest(%s::int[]) AS s", (self._spaces[0], list(shards))
            )

    def claim(
        self, shards: Sequence[int], limit: int, *, skip_blocked_keys: bool, in_flight: Sequence[str] = ()
    ) -> list[OutboxRow]:
        """See :func:`claim`."""
        return claim(self._conn(), shards, limit, skip_blocked_keys=skip_blocked_keys, in_flight=in_flight)

    def settle(self, dead_letters: Sequence[DeadLetter], done: Sequence[str], *, delete: bool) -> int:
        """See :meth:`OutboxStore.settle` (dead letters in savepoints, :func:`insert_dead_letters`)."""
        conn = self._conn()
        with conn.transaction():
            last_resort = insert_dead_letters(conn, dead_letters)
            finish(conn, done, delete=delete)
        return last_resort

    def cleanup_published(self, older_than_seconds: float, limit: int = 1000) -> int:
        """See :meth:`OutboxStore.cleanup_published` (bounded, so quick)."""
        cur = self._conn().execute(
            f"DELETE FROM {OUTBOX} WHERE id IN (SELECT id FROM {OUTBOX} WHERE published_at IS NOT NULL"  # noqa: S608
            " AND published_at < now() - make_interval(secs => %s) LIMIT %s)",
            (older_than_seconds, limit),
        )
        return cur.rowcount

    def backlog(self) -> int:
        """See :meth:`OutboxStore.backlog`."""
        row = self._conn().execute(f"SELECT count(*) FROM {OUTBOX} WHERE published_at IS NULL").fetchone()  # noqa: S608
        return int(row[0]) if row else 0

    def wait_for_work(self, timeout: float) -> bool:
        """See :meth:`OutboxStore.wait_for_work` (a NOTIFY on the outbox channel)."""
        if self._listen is None:
            raise psycopg.OperationalError("the relay's LISTEN connection is closed")
        return any(True for _ in self._listen.notifies(timeout=timeout, stop_after=1))
