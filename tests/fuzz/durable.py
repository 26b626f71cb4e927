"""Where a consumed message's outcome is stored, and the checks of issue 13's property.

A message at ``(group, topic, partition, offset)`` has exactly one durable outcome: an inbox row
there (applied), nothing there but an inbox row of its event id elsewhere (duplicate), or one
listener dead letter there (dead-lettered: ``pending``; parked: ``parked``) or one last-resort
row there, keeping the raw key, value and headers byte for byte.

The checks read through a :data:`Rows` function, so they run on PostgreSQL (a psycopg connection
is taken as one) and on MariaDB (:func:`mariadb_rows`) alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from kafkaguard import headers as H
from kafkaguard import raw_headers
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.logtext import short
from tests.fuzz.strategies import Message

ANY = "any"
APPLIED = "applied"
DUPLICATE = "duplicate"
CONFLICT = "conflict"
"""What a test expects of a message: any durable outcome, or exactly this one."""

DETERMINISTIC_ERRORS = ("DataError", "IntegrityError")  # SQLSTATE classes 22 and 23


@dataclass(frozen=True)
class Stored:
    """The rows stored for one position."""

    inbox: list[tuple[Any, ...]]
    dead_letters: list[tuple[Any, ...]]  # raw_key, raw_value, raw_headers, status, reason, attempts, error_class
    last_resort: list[tuple[Any, ...]]  # raw_key, raw_value, raw_headers, error, status

    @property
    def count(self) -> int:
        return len(self.inbox) + len(self.dead_letters) + len(self.last_resort)


Rows = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]
"""Runs one query (``%(name)s`` parameters, ``"quoted"`` identifiers) and returns its rows."""

Db = psycopg.Connection[Any] | Rows
"""Where the checks read: a psycopg connection (PostgreSQL) or a :data:`Rows` function."""


def mariadb_rows(conn: Any) -> Rows:
    """:data:`Rows` over a PyMySQL connection: identifiers in backticks, UUIDs as their text (CHAR(36))."""

    def run(sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        values = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in params.items()}
        with conn.cursor() as cur:
            cur.execute(sql.replace('"', "`"), values)
            return [tuple(r) for r in cur.fetchall()]

    return run


def _rows(db: Db) -> Rows:
    if isinstance(db, psycopg.Connection):
        conn = db
        return lambda sql, params: [tuple(r) for r in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]
    return db


def stored_at(db: Db, group: str, topic: str, partition: int, offset: int) -> Stored:
    rows = _rows(db)
    where = {"g": group, "t": topic, "p": partition, "o": offset}
    inbox = rows(
        'SELECT event_id FROM kafka_inbox WHERE consumer_group = %(g)s AND topic = %(t)s AND "partition" = %(p)s'
        ' AND "offset" = %(o)s',
        where,
    )
    dead = rows(
        "SELECT raw_key, raw_value, raw_headers, status, reason, attempts, error_class FROM kafka_listener_dead_letters"
        ' WHERE consumer_group = %(g)s AND topic = %(t)s AND "partition" = %(p)s AND "offset" = %(o)s',
        where,
    )
    last = rows(
        "SELECT raw_key, raw_value, raw_headers, error, status FROM kafkaguard_last_resort WHERE store = 'listener'"
        ' AND consumer_group = %(g)s AND topic = %(t)s AND "partition" = %(p)s AND "offset" = %(o)s',
        where,
    )
    return Stored(inbox, dead, last)


def event_id_of(headers: Sequence[tuple[str, bytes | None]]) -> uuid.UUID | None:
    """The event id the decoder would read (the last ``event_id`` header with a value), if any."""
    found = None
    for name, value in headers:
        if name == H.EVENT_ID and value is not None:
            found = value
    try:
        return uuid.UUID(found.decode()) if found is not None else None
    except (UnicodeDecodeError, ValueError):
        return None


def _bytes(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _same_raw(row: tuple[Any, ...], sent: Message, where: str, *, unreadable_names: bool) -> None:
    raw_key, raw_value, raw_hdrs = _bytes(row[0]), _bytes(row[1]), _bytes(row[2])
    assert raw_key == sent.key, f"{where}: raw_key {short(raw_key)} differs from the key sent {short(sent.key)}"
    assert raw_value == sent.value, (
        f"{where}: raw_value {short(raw_value)} differs from the value sent {short(sent.value)}"
    )
    expected = raw_headers.encode(sent.headers)
    if unreadable_names and raw_hdrs is None:
        return  # confluent-kafka cannot hand these names over at all; the key and value are kept
    assert raw_hdrs == expected, (
        f"{where}: raw_headers {short(raw_hdrs)} are not raw_headers.encode(the headers sent) {short(expected)}"
    )


def check(
    conn: Db,
    group: str,
    where: tuple[str, int, int],
    sent: Message,
    outcome: object,
    expect: str = ANY,
) -> str:
    """Assert the property for the message ``sent`` read at ``where`` with ``outcome``; return its kind.

    Kinds: ``applied``, ``duplicate``, ``dead_lettered``, ``parked``, ``last_resort``.
    """
    topic, partition, offset = where
    label = f"{topic}[{partition}]@{offset} {sent!r}"
    assert isinstance(outcome, Outcome), f"{label}: returned {outcome!r}, not an Outcome"
    durable = (Outcome.APPLIED, Outcome.DUPLICATE, Outcome.PARKED, Outcome.DEAD_LETTERED, Outcome.ID_CONFLICT)
    assert outcome in durable, f"{label}: outcome {outcome.value} (nothing in this registry is ignored)"
    if expect == APPLIED:
        assert outcome is Outcome.APPLIED, f"{label}: a valid event of a fresh key was {outcome.value}, not applied"
    elif expect == DUPLICATE:
        assert outcome is Outcome.DUPLICATE, f"{label}: a redelivered event was {outcome.value}, not a duplicate"
    elif expect == CONFLICT:
        assert outcome is Outcome.ID_CONFLICT, (
            f"{label}: an event id seen before with other content was {outcome.value}, not an id conflict"
            " (issue 13, Deliver 4)"
        )
    stored = stored_at(conn, group, topic, partition, offset)
    if outcome is Outcome.APPLIED:
        assert len(stored.inbox) == 1 and stored.count == 1, f"{label}: applied, but stored {stored}"
        return "applied"
    if outcome is Outcome.DUPLICATE:
        assert stored.count == 0, f"{label}: a duplicate, but rows were stored at its position: {stored}"
        event_id = event_id_of(sent.headers)
        assert event_id is not None, f"{label}: a duplicate without a readable event id"
        found = _rows(conn)(
            "SELECT count(*) FROM kafka_inbox WHERE consumer_group = %(g)s AND event_id = %(e)s",
            {"g": group, "e": event_id},
        )
        assert found[0][0] == 1, f"{label}: a duplicate of {event_id}, which has no inbox row"
        return "duplicate"
    assert stored.count == 1 and not stored.inbox, f"{label}: {outcome.value}, but stored {stored}"
    unreadable = not sent.names_are_utf8
    if stored.dead_letters:
        row = stored.dead_letters[0]
        _same_raw(row, sent, label, unreadable_names=unreadable)
        status, reason, attempts, error_class = row[3], row[4], row[5], row[6]
        wanted = "parked" if outcome is Outcome.PARKED else "pending"
        assert status == wanted, f"{label}: {outcome.value}, but its dead letter is {status!r}"
        if error_class and error_class.endswith(DETERMINISTIC_ERRORS):
            assert attempts == 1, (
                f"{label}: {error_class} (reason {reason}) was tried {attempts} times; deterministic errors are"
                " permanent (issue 13, Deliver 1)"
            )
        return str(outcome.value)
    row = stored.last_resort[0]
    _same_raw(row, sent, label, unreadable_names=unreadable)
    assert isinstance(row[3], str) and row[3].isascii(), f"{label}: last-resort error {short(row[3])} is not ASCII"
    return "last_resort"


def applied_once(conn: Db, event_id: uuid.UUID) -> int:
    """How many times the fuzz handler applied ``event_id`` (rows in ``fuzz_effects``)."""
    found = _rows(conn)("SELECT count(*) FROM fuzz_effects WHERE event_id = %(e)s", {"e": event_id})
    return int(found[0][0])
