"""The publisher dead-letter store (``kafka_publisher_dead_letters``): events that could not be handed on.

Guarantees: an insert is idempotent per event (``ON CONFLICT (event_id) DO NOTHING``), so a path
that runs twice for one event never stores it twice; the row is written in the transaction it is
given (the caller's business transaction in ``direct``/``http`` mode, the relay's claim transaction
in ``outbox`` mode), so it commits exactly when that transaction does. A record holds the event, its
topic, the path (``source``), the last error's class and message, and a history of attempts; it
never holds client settings or credentials.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import DeadLetterStatus, PublishSource
from kafkaguard.db.history import history_entry as shared_history_entry
from kafkaguard.db.safe_text import pg_json, pg_text
from kafkaguard.db.tables import publisher_dead_letters
from kafkaguard.envelope import Event
from kafkaguard.policies.classify import qualified_name

MAX_ERROR_MESSAGE = 2000  # a broker's error text is short; a stack dump is not worth keeping here


def history_entry(error: BaseException, *, attempt: int, source: PublishSource) -> dict[str, Any]:
    """One JSON entry of a dead letter's history: when, which path, which attempt, which error."""
    return shared_history_entry("dead_lettered", error, attempt=attempt, source=source.value)


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
        "history": [history_entry(error, attempt=attempts, source=source)],
    }


def _statement(values: dict[str, Any]) -> Any:
    return insert(publisher_dead_letters).values(**values).on_conflict_do_nothing(index_elements=["event_id"])


def add_dead_letter(
    session: Session | Connection,
    event: Event,
    *,
    topic: str,
    source: PublishSource,
    error: BaseException,
    attempts: int = 1,
) -> None:
    """Insert a publisher dead letter in the transaction of ``session`` (idempotent per event_id)."""
    values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
    session.execute(_statement(values))


async def add_dead_letter_async(
    session: AsyncSession | AsyncConnection,
    event: Event,
    *,
    topic: str,
    source: PublishSource,
    error: BaseException,
    attempts: int = 1,
) -> None:
    """Asyncio form of :func:`add_dead_letter`."""
    values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
    await session.execute(_statement(values))


FROM_OUTBOX_SQL = """
INSERT INTO kafka_publisher_dead_letters
  (event_id, key, type, aggregate_type, topic, payload, headers, occurred_at, schema_version,
   source, status, attempts, last_error_class, last_error_message, history)
SELECT o.id, NULLIF(o.aggregateid, ''), o.type,
       CASE WHEN o.aggregatetype <> '' THEN o.aggregatetype ELSE split_part(o.type, '.', 1) END,
       %(topic)s, o.payload, o.headers, o.occurred_at, o.schema_version,
       %(source)s, %(status)s, %(attempts)s, %(last_error_class)s, %(last_error_message)s, %(history)s::jsonb
FROM outbox o WHERE o.id = %(outbox_id)s::uuid
ON CONFLICT (event_id) DO NOTHING
"""
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
        "history": json.dumps([pg_json(history_entry(error, attempt=1, source=source))], default=str),
    }
