"""The publisher dead-letter store (``kafka_publisher_dead_letters``): port and PostgreSQL adapter.

Guarantees of every implementation:

- an insert is idempotent per event (``ON CONFLICT (event_id) DO NOTHING``): a path that runs twice
  for one event never stores it twice;
- a writer stores the row in the transaction it is given (the caller's business transaction in
  ``direct``/``http`` mode, the relay's settle transaction in ``outbox`` mode), so it commits
  exactly when that transaction does;
- the restore side (:meth:`PublisherDeadLetterStore.hold_key`) hands one key's open records to one
  caller at a time; another caller asking for the same key meanwhile gets None and skips it.

A record holds the event, its topic, the path (``source``), the last error's qualified class and
message, and a history of attempts (entries of :func:`kafkaguard.db.history.history_entry`,
``attempts`` counted); it never holds client settings or credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db import columns as C
from kafkaguard.db.columns import DeadLetterStatus, PublishSource
from kafkaguard.db.engine import require_postgresql
from kafkaguard.db.history import history_entry as shared_history_entry
from kafkaguard.db.locks import PUBLISHER_SCOPE
from kafkaguard.db.safe_text import pg_json, pg_text
from kafkaguard.db.tables import publisher_dead_letters
from kafkaguard.envelope import Event
from kafkaguard.policies.classify import qualified_name
from kafkaguard.stores.restore_decision import RestoreDecision

MAX_ERROR_MESSAGE = 2000  # a broker's error text is short; a stack dump is not worth keeping here

Writer = Session | Connection


def on_mariadb_session(session: Any) -> bool:
    """Whether ``session`` (a SQLAlchemy ``Session`` or ``Connection``) is on MariaDB."""
    bind = session.get_bind() if isinstance(session, Session) else session
    dialect = getattr(bind, "dialect", None)
    return getattr(dialect, "name", "") in ("mysql", "mariadb")


def history_entry(error: BaseException, *, attempts: int, source: PublishSource) -> dict[str, Any]:
    """One JSON entry of a dead letter's history: when, which path, how many attempts, which error."""
    return shared_history_entry("dead_lettered", error, attempts=attempts, source=source.value)


def dead_letter_values(
    event: Event, *, topic: str, source: PublishSource, error: BaseException, attempts: int = 1
) -> dict[str, Any]:
    """The column values of a new ``pending`` publisher dead letter for ``event``."""
    return {
        "event_id": event.event_id,
        "key": event.key,
        "type": event.type,
        "aggregate_type": event.aggregate_type,
        "topic": topic,
        "payload": event.payload,
        "headers": dict(event.headers),
        "occurred_at": event.occurred_at,
        "schema_version": event.schema_version,
        "source": source.value,
        "status": DeadLetterStatus.PENDING.value,
        "attempts": attempts,
        "last_error_class": qualified_name(type(error)),
        "last_error_message": str(error)[:MAX_ERROR_MESSAGE],
        "history": [history_entry(error, attempts=attempts, source=source)],
    }


def add_dead_letter(
    session: Writer, event: Event, *, topic: str, source: PublishSource, error: BaseException, attempts: int = 1
) -> None:
    """Insert a publisher dead letter in the transaction of ``session`` (idempotent per event_id), in
    the SQL of ``session``'s database (PostgreSQL, or MariaDB's twin)."""
    if on_mariadb_session(session):
        from kafkaguard.stores.publisher_dead_letters_mariadb import add_dead_letter as add_on_mariadb

        add_on_mariadb(session, event, topic=topic, source=source, error=error, attempts=attempts)
        return
    values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
    session.execute(insert(publisher_dead_letters).values(**values).on_conflict_do_nothing(index_elements=["event_id"]))


async def add_dead_letter_async(
    session: AsyncSession | AsyncConnection,
    event: Event,
    *,
    topic: str,
    source: PublishSource,
    error: BaseException,
    attempts: int = 1,
) -> None:
    """Asyncio form of :func:`add_dead_letter`: the same core, run on the session's sync side."""
    await session.run_sync(add_dead_letter, event, topic=topic, source=source, error=error, attempts=attempts)


FROM_OUTBOX_SQL = f"""
INSERT INTO {C.PUBLISHER_DEAD_LETTERS}
  (event_id, key, type, aggregate_type, topic, payload, headers, occurred_at, schema_version,
   source, status, attempts, last_error_class, last_error_message, history)
SELECT o.id, NULLIF(o.aggregateid, ''), o.type,
       CASE WHEN o.aggregatetype <> '' THEN o.aggregatetype ELSE split_part(o.type, '.', 1) END,
       %(topic)s, o.payload, o.headers, o.occurred_at, o.schema_version,
       %(source)s, %(status)s, %(attempts)s, %(last_error_class)s, %(last_error_message)s, %(history)s::jsonb
FROM {C.OUTBOX} o WHERE o.id = %(outbox_id)s::uuid
ON CONFLICT (event_id) DO NOTHING
"""  # noqa: S608 - table names are constants
"""The relay's insert: the dead letter of an outbox row, copied by PostgreSQL from the row itself.

Nothing of the row passes through Python: the payload and headers are the row's ``jsonb`` values
(never decoded, whatever their depth or size), the key is ``aggregateid`` or NULL when it is empty
(a keyless row holds back no real key), ``type`` is the row's (the column is NOT NULL, so an empty
type stays ``''``), and ``aggregate_type`` is the one the Kafka headers carry (the row's, or the
type's first part when empty, as :class:`~kafkaguard.envelope.Event` does). Fill it with
:func:`outbox_params`. Idempotent per event id (``ON CONFLICT (event_id) DO NOTHING``).
"""


def outbox_params(
    outbox_id: str, *, topic: str, error: BaseException, source: PublishSource = PublishSource.OUTBOX
) -> dict[str, Any]:
    """Parameters of :data:`FROM_OUTBOX_SQL`: the row's id and what only Python knows (topic, error)."""
    return {
        "outbox_id": outbox_id,
        "topic": pg_text(topic),
        "source": source.value,
        "status": DeadLetterStatus.PENDING.value,
        "attempts": 1,
        "last_error_class": qualified_name(type(error)),
        "last_error_message": pg_text(str(error)[:MAX_ERROR_MESSAGE]),
        "history": json.dumps([pg_json(history_entry(error, attempts=1, source=source))], default=str),
    }


class HeldRecords(Protocol):
    """One key's open records (or one keyless record), held by one restore run until the block ends.

    ``records``: dicts of the record columns (``payload`` and ``headers`` as JSON text, decoded by
    the caller after a depth check; ``occurred_at`` None when outside Python's range), in id order.
    Outcomes recorded here commit when the block ends without an exception.
    """

    records: list[dict[str, Any]]

    def record_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        """Write ``outcome`` (and ``error``'s qualified class and message, when given) to the record."""


KEY_HELD_SQL = f"""
SELECT 1 FROM {C.PUBLISHER_DEAD_LETTERS} WHERE key = :key AND status IN ('pending', 'failed') LIMIT 1
"""  # noqa: S608
"""Does the key have an open publisher dead letter? (index ix_publisher_dl_key)"""


class PublisherDeadLetterWriter(Protocol):
    """What the publisher needs of the publisher dead-letter store (``direct``, ``http``, ``background``).

    ``session``: the caller's transaction (a SQLAlchemy ``Session`` or ``Connection``): the record
    commits exactly when it does; None: in a transaction of the store's own, committed before
    :meth:`add` returns (``background`` mode, after the caller's commit).
    """

    def add(
        self, session: Any, event: Event, *, topic: str, source: PublishSource, error: BaseException, attempts: int = 1
    ) -> None:
        """Store a pending dead letter of ``event`` (idempotent per event id)."""

    def key_held(self, session: Any, key: str) -> bool:
        """Whether ``key`` has an open (``pending``/``failed``) record, as ``session`` sees it; a store
        that cannot answer says False (delivery decides)."""


class PublisherDeadLetterStore(Protocol):
    """What the publisher restore job needs of the publisher dead-letter store."""

    def due_heads(self, limit: int) -> list[tuple[int, str | None]]:
        """(id, key) of the oldest open record of each key whose head is due, and every due keyless one."""

    def due_keyless(self, limit: int) -> list[int]:
        """Ids of due pending records without a key, oldest first."""

    def hold_key(self, key: str) -> AbstractContextManager[HeldRecords | None]:
        """The open (``pending``/``failed``) records of ``key``, or None if another run holds the key."""

    def hold_keyless(self, record_id: int) -> AbstractContextManager[HeldRecords | None]:
        """The pending keyless record ``record_id``, or None (held by another run, or gone)."""


DUE_KEYS_SQL = f"""
SELECT id, key FROM {C.PUBLISHER_DEAD_LETTERS} d
WHERE status = 'pending' AND next_attempt_at <= now()
  AND (key IS NULL OR NOT EXISTS (SELECT 1 FROM {C.PUBLISHER_DEAD_LETTERS} e
                                  WHERE e.key = d.key AND e.id < d.id AND e.status IN ('pending', 'failed')))
ORDER BY id LIMIT :limit
"""  # noqa: S608 - table names are constants

RECORD_COLUMNS = (
    "id, event_id, key, type, aggregate_type, topic, payload::text AS payload, headers::text AS headers,"
    " CASE WHEN occurred_at BETWEEN '0001-01-02' AND '9999-12-30' THEN occurred_at END AS occurred_at,"
    " schema_version, source, status, attempts, next_attempt_at, last_error_class, last_error_message,"
    " created_at, updated_at"
)
"""A record's columns as the job reads them: JSON as text (decoded after a depth check, never by the
driver, whose json.loads recurses), timestamps outside Python's range as NULL (the driver raises)."""

KEY_RECORDS_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE key = :key AND status IN ('pending', 'failed') ORDER BY id FOR UPDATE
"""  # noqa: S608

KEYLESS_RECORD_SQL = f"""
SELECT {RECORD_COLUMNS} FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE id = :id AND key IS NULL AND status = 'pending' FOR UPDATE SKIP LOCKED
"""  # noqa: S608
"""One keyless record, unless another run holds it (then it is skipped, like a locked key)."""

KEYLESS_DUE_SQL = f"""
SELECT id FROM {C.PUBLISHER_DEAD_LETTERS}
WHERE key IS NULL AND status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT :limit
"""  # noqa: S608

OUTCOME_SQL = f"""
UPDATE {C.PUBLISHER_DEAD_LETTERS} SET status = :status, attempts = :attempts, next_attempt_at = :next,
  updated_at = now(), history = history || CAST(:entry AS jsonb),
  restored_at = CASE WHEN :restored THEN now() ELSE restored_at END,
  restored_by = CASE WHEN :restored THEN :by ELSE restored_by END,
  last_error_class = COALESCE(:err_cls, last_error_class), last_error_message = COALESCE(:err_msg, last_error_message)
WHERE id = :id
"""  # noqa: S608


def outcome_params(record_id: int, outcome: RestoreDecision, error: BaseException | None) -> dict[str, Any]:
    """Parameters of :data:`OUTCOME_SQL` (the error class stored qualified, as every writer does)."""
    return {
        "status": outcome.status.value,
        "attempts": outcome.attempts,
        "next": outcome.next_attempt_at,
        "entry": json.dumps([pg_json(outcome.history_entry)], default=str),
        "restored": outcome.status is DeadLetterStatus.RESTORED,
        "by": outcome.history_entry.get("by"),
        "err_cls": qualified_name(type(error)) if error is not None else None,
        "err_msg": pg_text(str(error)[:MAX_ERROR_MESSAGE]) if error is not None else None,
        "id": record_id,
    }


class SqlHeldRecords:
    """:class:`HeldRecords` inside one PostgreSQL transaction (``connection``: for writes that must
    commit with the outcome, e.g. the restore job's ``handoff`` into the same database)."""

    def __init__(self, connection: Connection, records: list[dict[str, Any]]) -> None:
        self.connection = connection
        self.records = records

    def record_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        """See :meth:`HeldRecords.record_outcome`."""
        self.connection.execute(text(OUTCOME_SQL), outcome_params(record_id, outcome, error))


class SqlPublisherDeadLetters:
    """What the publisher dead-letter store does the same way on every database: the writer (its
    statements in the SQL of the session's database) and the due-record reads (``due_keys_sql`` and
    ``keyless_due_sql``, per dialect). Holding a key is each adapter's own.

    ``engine`` may be None for a writer that only writes in its callers' sessions (the restore side
    and ``add(None, ...)`` then raise :class:`~kafkaguard.errors.ConfigurationError`).
    """

    due_keys_sql = DUE_KEYS_SQL
    keyless_due_sql = KEYLESS_DUE_SQL

    def __init__(self, engine: Engine | None = None) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The engine of the store's own transactions."""
        if self._engine is None:
            from kafkaguard.errors import ConfigurationError

            raise ConfigurationError("this publisher dead-letter store has no engine (a database URL is needed)")
        return self._engine

    def add(
        self,
        session: Writer | None,
        event: Event,
        *,
        topic: str,
        source: PublishSource,
        error: BaseException,
        attempts: int = 1,
    ) -> None:
        """Store a dead letter in ``session``'s transaction (:func:`add_dead_letter`), or in one of
        the engine's own when ``session`` is None."""
        if session is not None:
            add_dead_letter(session, event, topic=topic, source=source, error=error, attempts=attempts)
            return
        with self.engine.begin() as conn:
            add_dead_letter(conn, event, topic=topic, source=source, error=error, attempts=attempts)

    def key_held(self, session: Any, key: str) -> bool:
        """See :meth:`PublisherDeadLetterWriter.key_held` (in a savepoint, so the caller's transaction
        survives a store that cannot be read)."""
        sql = KEY_HELD_SQL
        if on_mariadb_session(session):
            from kafkaguard.stores.publisher_dead_letters_mariadb import KEY_HELD_SQL as sql
        try:
            with session.begin_nested():
                return session.execute(text(sql), {"key": key}).first() is not None
        except SQLAlchemyError:
            return False

    def due_heads(self, limit: int) -> list[tuple[int, str | None]]:
        """See :meth:`PublisherDeadLetterStore.due_heads`."""
        with self.engine.connect() as conn:
            return [(int(i), k) for i, k in conn.execute(text(self.due_keys_sql), {"limit": limit})]

    def due_keyless(self, limit: int) -> list[int]:
        """See :meth:`PublisherDeadLetterStore.due_keyless`."""
        with self.engine.connect() as conn:
            return [int(r[0]) for r in conn.execute(text(self.keyless_due_sql), {"limit": limit})]


class PostgresPublisherDeadLetters(SqlPublisherDeadLetters):
    """:class:`PublisherDeadLetterStore` and :class:`PublisherDeadLetterWriter` on a SQLAlchemy engine
    on PostgreSQL.

    A key is held by ``pg_try_advisory_xact_lock(publisher scope, key)`` in the transaction that
    reads its records ``FOR UPDATE`` and writes their outcomes: two runs never process one key.
    """

    def __init__(self, engine: Engine | None = None) -> None:
        require_postgresql(engine, "the publisher dead-letter store")
        super().__init__(engine)

    @contextmanager
    def hold_key(self, key: str) -> Iterator[SqlHeldRecords | None]:
        """See :meth:`PublisherDeadLetterStore.hold_key`."""
        with self.engine.begin() as conn:
            locked = conn.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:scope), hashtext(:key))"),
                {"scope": PUBLISHER_SCOPE, "key": key},
            ).scalar_one()
            if not locked:
                yield None
                return
            rows = conn.execute(text(KEY_RECORDS_SQL), {"key": key}).mappings().all()
            yield SqlHeldRecords(conn, [dict(r) for r in rows])

    @contextmanager
    def hold_keyless(self, record_id: int) -> Iterator[SqlHeldRecords | None]:
        """See :meth:`PublisherDeadLetterStore.hold_keyless`."""
        with self.engine.begin() as conn:
            row = conn.execute(text(KEYLESS_RECORD_SQL), {"id": record_id}).mappings().first()
            yield None if row is None else SqlHeldRecords(conn, [dict(row)])
