"""The fallback of ``direct`` and ``http`` mode: a failed event becomes a publisher dead letter in the
caller's transaction; if even that write fails, the transaction is rolled back and the caller gets
:class:`~kafkaguard.errors.PublishUnavailableError` (an HTTP layer answers 503).

Guarantee: after a delivery failure either the dead letter commits with the business writes, or
nothing of the transaction commits — the event is never silently dropped.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import PublishUnavailableError
from kafkaguard.stores.publisher_dead_letters import PublisherDeadLetterWriter

logger = logging.getLogger(__name__)


def _unavailable(event: Event, source: PublishSource, error: BaseException, store_error: BaseException) -> Exception:
    logger.error(
        "event %s (type %s, key %s): %s delivery failed (%s) and the dead letter could not be written (%s);"
        " transaction rolled back",
        event.event_id,
        event.type,
        event.key,
        source.value,
        error,
        type(store_error).__name__,
    )
    return PublishUnavailableError(
        f"event {event.event_id} could not be published ({error}) nor stored as a dead letter "
        f"({type(store_error).__name__}); the transaction was rolled back, retry later",
        event_id=str(event.event_id),
        cause=str(error),
    )


def _log_stored(event: Event, topic: str, source: PublishSource, error: BaseException) -> None:
    logger.warning(
        "event %s (type %s, key %s) to %s: %s delivery failed (%s); stored as a publisher dead letter",
        event.event_id,
        event.type,
        event.key,
        topic,
        source.value,
        error,
    )


def dead_letter_or_raise(
    store: PublisherDeadLetterWriter,
    session: Session,
    event: Event,
    *,
    topic: str,
    source: PublishSource,
    error: BaseException,
    attempts: int = 1,
) -> None:
    """Store ``event`` as a pending dead letter in ``store`` within ``session``'s transaction, or roll
    back and raise."""
    try:
        store.add(session, event, topic=topic, source=source, error=error, attempts=attempts)
        session.flush()
    except SQLAlchemyError as exc:
        session.rollback()
        raise _unavailable(event, source, error, exc) from exc
    _log_stored(event, topic, source, error)


async def dead_letter_or_raise_async(
    store: PublisherDeadLetterWriter,
    session: AsyncSession,
    event: Event,
    *,
    topic: str,
    source: PublishSource,
    error: BaseException,
    attempts: int = 1,
) -> None:
    """Asyncio form of :func:`dead_letter_or_raise`: the same core, run on the session's sync side."""
    await session.run_sync(
        lambda sync: dead_letter_or_raise(
            store, sync, event, topic=topic, source=source, error=error, attempts=attempts
        )
    )
