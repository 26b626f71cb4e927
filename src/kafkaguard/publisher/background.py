"""``background`` mode (the order note's e-2): after the commit, publish from a worker thread.

Steps, each only when the previous one failed:
1. publish to the event's topic, up to ``background_retry.max_attempts`` attempts with its backoff
   (a rejected event skips the remaining attempts: waiting does not help it);
2. the DLQ topic ``<topic>.dlq`` (headers say the original topic and the error);
3. ``kafka_publisher_dead_letters`` (source ``background``, in a transaction of its own);
4. ``logger.critical`` with the whole event as JSON — the last trace of it.

Guarantee, as DESIGN.md says: events are lost if the process dies between the caller's commit and
step 3; this mode exists to be measured against ``outbox``. Nothing here runs on an event loop:
the work happens on a small thread pool, and callers get a :class:`concurrent.futures.Future`.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
from collections.abc import Callable
from enum import Enum

from sqlalchemy.exc import SQLAlchemyError

from kafkaguard import headers as H
from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import EventRejectedError, PublishError
from kafkaguard.policies.classify import qualified_name
from kafkaguard.policies.retry import GiveUp, RetryPolicy, next_step
from kafkaguard.stores.publisher_dead_letters import PublisherDeadLetterWriter
from kafkaguard.topics import dlq_topic
from kafkaguard.transports.ports import Producer, Topics

logger = logging.getLogger(__name__)


class BackgroundOutcome(Enum):
    """Where a background event ended up."""

    PUBLISHED = "published"
    DLQ_TOPIC = "dlq_topic"
    DEAD_LETTER_TABLE = "dead_letter_table"
    LOGGED = "logged"


class BackgroundPublisher:
    """Publish events off the caller's thread with retries and three fallbacks. Thread-safe.

    ``dead_letters``: the store of step 3, written in a transaction of its own (``add(None, ...)``);
    None skips straight to the critical log.
    """

    def __init__(
        self,
        producer: Producer,
        topics: Topics,
        *,
        policy: RetryPolicy,
        attempt_timeout: float,
        for_aggregate: Callable[[str], str],
        dead_letters: PublisherDeadLetterWriter | None,
        max_workers: int = 4,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.policy = policy
        self.attempt_timeout = attempt_timeout
        self.for_aggregate = for_aggregate
        self.dead_letters = dead_letters
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="kafkaguard-background")
        self._stop = threading.Event()

    def submit(self, event: Event, *, topic: str | None = None) -> concurrent.futures.Future[BackgroundOutcome]:
        """Start publishing ``event`` (call after the commit); the future tells where it ended up."""
        return self._pool.submit(self._run, event, topic or self.for_aggregate(event.aggregate_type))

    def _send(self, topic: str, event: Event, extra: list[tuple[str, bytes]] | None = None) -> None:
        self.topics.ensure(topic, timeout=self.attempt_timeout)
        headers = event.kafka_headers() + (extra or [])
        self.producer.send(
            topic, event.payload_bytes(), key=event.key.encode(), headers=headers, timeout=self.attempt_timeout
        )

    def _run(self, event: Event, topic: str) -> BackgroundOutcome:
        attempt, error = 0, None
        while True:
            attempt += 1
            try:
                self._send(topic, event)
                return BackgroundOutcome.PUBLISHED
            except PublishError as exc:
                error = exc
            step = next_step(attempt, not isinstance(error, EventRejectedError), self.policy)
            logger.warning(
                "event %s (key %s) to %s: attempt %d failed (%s)", event.event_id, event.key, topic, attempt, error
            )
            if isinstance(step, GiveUp) or self._stop.wait(step.delay):
                break
        return self._fallback(event, topic, error, attempt)

    def _fallback(self, event: Event, topic: str, error: PublishError, attempts: int) -> BackgroundOutcome:
        dlq = dlq_topic(topic)
        try:
            self._send(
                dlq,
                event,
                [
                    (H.DLQ_ORIGINAL_TOPIC, topic.encode()),
                    (H.DLQ_EXCEPTION_CLASS, qualified_name(type(error)).encode()),
                    (H.DLQ_EXCEPTION_MESSAGE, str(error)[:1000].encode()),
                ],
            )
            logger.error("event %s (key %s) sent to DLQ topic %s after: %s", event.event_id, event.key, dlq, error)
            return BackgroundOutcome.DLQ_TOPIC
        except PublishError as exc:
            error = exc
        if self.dead_letters is not None:
            try:
                self.dead_letters.add(
                    None, event, topic=topic, source=PublishSource.BACKGROUND, error=error, attempts=attempts
                )
                logger.error(
                    "event %s (key %s) stored as a publisher dead letter: %s", event.event_id, event.key, error
                )
                return BackgroundOutcome.DEAD_LETTER_TABLE
            except SQLAlchemyError as exc:
                error_text = f"{error}; dead-letter store failed: {type(exc).__name__}"
        else:
            error_text = f"{error}; no dead-letter store configured"
        logger.critical(
            "EVENT LOST unless recovered from this line: topic %s, error %s, event %s",
            topic,
            error_text,
            json.dumps(event.to_json(), default=str, ensure_ascii=False),
        )
        return BackgroundOutcome.LOGGED

    def close(self) -> None:
        """Stop retry waits early and wait for running deliveries to finish their fallbacks."""
        self._stop.set()
        self._pool.shutdown(wait=True)
