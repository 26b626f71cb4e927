"""``direct`` mode: produce inside the caller's transaction and wait for the broker's ack within a
time budget (``PublishSettings.direct_timeout``).

Guarantee (DESIGN.md): no loss — on any delivery failure the event is written to
``kafka_publisher_dead_letters`` in the same transaction (source ``direct``); if that write fails,
the transaction is rolled back and :class:`~kafkaguard.errors.PublishUnavailableError` is raised.
A phantom event is possible if the caller's commit fails after the ack. The asyncio form awaits the
ack through a future completed by the producer's poll thread: the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import PublishError
from kafkaguard.publisher.fallback import dead_letter_or_raise, dead_letter_or_raise_async
from kafkaguard.stores.publisher_dead_letters import PublisherDeadLetterWriter
from kafkaguard.transports.ports import Producer, Topics


class DirectPublisher:
    """Publish in the caller's transaction with a dead-letter fallback into ``dead_letters``. Thread-safe;
    share one per process."""

    def __init__(
        self,
        producer: Producer,
        topics: Topics,
        *,
        timeout: float,
        for_aggregate: Callable[[str], str],
        dead_letters: PublisherDeadLetterWriter,
    ) -> None:
        self.producer = producer
        self.dead_letters = dead_letters
        self.topics = topics
        self.timeout = timeout
        self.for_aggregate = for_aggregate

    def publish(self, session: Session, event: Event, *, topic: str | None = None) -> bool:
        """Deliver ``event``; return True if acknowledged, False if stored as a dead letter instead.

        Raises PublishUnavailableError (transaction rolled back) if neither worked.
        """
        name = topic or self.for_aggregate(event.aggregate_type)
        deadline = time.monotonic() + self.timeout
        try:
            self.topics.ensure(name, timeout=self.timeout)
            self.producer.send(
                name,
                event.payload_bytes(),
                key=event.key.encode(),
                headers=event.kafka_headers(),
                timeout=max(0.1, deadline - time.monotonic()),
            )
            return True
        except PublishError as exc:
            dead_letter_or_raise(self.dead_letters, session, event, topic=name, source=PublishSource.DIRECT, error=exc)
            return False

    async def publish_async(self, session: AsyncSession, event: Event, *, topic: str | None = None) -> bool:
        """Asyncio form of :meth:`publish`; waits for the ack without blocking the event loop."""
        name = topic or self.for_aggregate(event.aggregate_type)
        deadline = time.monotonic() + self.timeout
        try:
            await asyncio.to_thread(self.topics.ensure, name, timeout=self.timeout)  # cached after the first time
            await self.producer.send_async(
                name,
                event.payload_bytes(),
                key=event.key.encode(),
                headers=event.kafka_headers(),
                timeout=max(0.1, deadline - time.monotonic()),
            )
            return True
        except PublishError as exc:
            await dead_letter_or_raise_async(
                self.dead_letters, session, event, topic=name, source=PublishSource.DIRECT, error=exc
            )
            return False
