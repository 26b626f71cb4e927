"""``Pipeline``: the whole event path in memory — your Publisher, the relay, Kafka, your consumer, the
restore job — for tests of your handlers in milliseconds, with no Kafka, no JVM and no PostgreSQL.

The components are kafkaguard's own, only their ports are fakes: the :class:`~kafkaguard.Publisher`
writes to a :class:`~kafkaguard.testing.MemoryOutbox` (rows appear when *your* session commits), the
:class:`~kafkaguard.relay.worker.Relay` publishes it to a :class:`~kafkaguard.testing.MemoryProducer`
(the "broker"), the consumer :class:`~kafkaguard.Worker` reads what that producer holds and applies it
with your registry over a :class:`~kafkaguard.testing.MemoryConsumerStore` (inbox and listener dead
letters) whose transactions also commit your handler's session, and the
:class:`~kafkaguard.restore.listener_job.ListenerRestoreJob` restores over the same store. So the
guarantees you test are the real ones: exactly-once effect through the inbox, retries then dead
letters, permanent errors dead-lettered at once, later events of a dead-lettered key parked behind
it and restored in order, publisher-side rejections held per key.

What differs from production, on purpose: nothing waits. In-process retry delays are skipped (the
delays asked for are kept in :attr:`Pipeline.retry_waits`), and :meth:`Pipeline.restore` restores
now, whatever the records' next attempt time (as ``kafkaguard dead-letters replay`` does).

Example (the README has a complete test)::

    kit = Pipeline(registry, group="welcome", sessions=async_sessionmaker(sqlite_engine))
    kit.publish(Event(type="user.signed_up", key="user-1", payload={...}))
    assert kit.deliver() == [Outcome.APPLIED]
    assert kit.redeliver() == [Outcome.DUPLICATE]

Not thread-safe: drive one pipeline from one thread (the test's).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.consumer.source import MemorySource
from kafkaguard.consumer.worker import Worker
from kafkaguard.db.columns import OPEN_STATUSES
from kafkaguard.envelope import Event
from kafkaguard.publisher.facade import Publisher, PublishOutcome
from kafkaguard.relay.worker import Relay, RoundResult
from kafkaguard.restore.listener_job import ListenerRestoreJob
from kafkaguard.restore.report import RunReport
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fakes.consumer_store import MemoryConsumerStore
from kafkaguard.testing.fakes.outbox import MemoryOutbox
from kafkaguard.testing.fakes.producer import MemoryProducer, StoredMessage
from kafkaguard.testing.fakes.publisher_dead_letters import MemoryPublisherDeadLetters
from kafkaguard.topics import DLQ_SUFFIX
from kafkaguard.transports.ports import TopicsExist

__all__ = ["Pipeline"]

_RELAY_ROUNDS = 1000  # a bound, never reached by a test's outbox: each round empties what it can


class _NoWait(threading.Event):
    """The consumer's stop event, whose retry waits return at once (the delays are recorded)."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        if timeout:
            self.waits.append(timeout)
        return self.is_set()


class ProducerSource(MemorySource):
    """A :class:`~kafkaguard.consumer.source.MemorySource` fed from what a :class:`MemoryProducer`
    stored: every partition of ``topics`` (a callable: the topics to read now) from offset 0, in
    offset order, messages stored later included.

    ``drained`` is called by :meth:`poll` when nothing is left to read (or the consumer paused):
    the pipeline stops its worker there.
    """

    def __init__(self, producer: MemoryProducer, topics: Callable[[], list[str]], drained: Callable[[], None]) -> None:
        super().__init__()
        self.producer = producer
        self.topics = topics
        self.drained = drained
        self._taken: set[tuple[str, int, int]] = set()

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        wanted = set(self.topics())
        for m in self.producer.messages():
            if m.topic in wanted and (m.topic, m.partition, m.offset) not in self._taken:
                self._taken.add((m.topic, m.partition, m.offset))
                self.append(Record(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers)))
        out = super().poll(max_records, timeout)
        if not out:
            self.drained()
        return out

    def from_start(self) -> None:
        """Read every partition again from offset 0 (Kafka redelivering)."""
        self.seek({tp: 0 for tp in self.logs})


class Pipeline:
    """Your registry's handlers behind the real publisher, relay, consumer and restore job, in memory.

    ``registry``: your :class:`~kafkaguard.HandlerRegistry`. ``sessions``: what makes the session a
    handler gets as ``ctx.session`` — a ``sessionmaker`` (sync handlers) or an ``async_sessionmaker``
    (``async def`` handlers get an ``AsyncSession``), e.g. on SQLite; None: ``ctx.session`` is None.
    ``group``: the consumer group (default ``settings.consumer.group_id``). ``settings``: yours
    (publish modes, topic names, the consumer's retries and batch size; default
    ``KafkaguardSettings()``: the ``KAFKAGUARD_*`` environment). ``topics``: the topics the consumer
    reads (default ``settings.consumer.topics``, or every topic but DLQ topics when that is empty).
    ``producer``: the in-memory broker (default ``MemoryProducer()``: one partition per topic).

    The fakes are attributes for assertions and faults: :attr:`producer` (``reject``,
    ``time_out``), :attr:`outbox`, :attr:`publisher_store`, :attr:`store` (``down = True`` for an
    outage), and :attr:`publisher` is the real :class:`~kafkaguard.Publisher` over them, for your
    own code to publish through. A context manager: ``with Pipeline(...) as kit:`` closes it.
    """

    def __init__(
        self,
        registry: HandlerRegistry,
        *,
        sessions: Callable[[], Any] | None = None,
        group: str | None = None,
        settings: KafkaguardSettings | None = None,
        topics: Sequence[str] | None = None,
        producer: MemoryProducer | None = None,
    ) -> None:
        settings = settings if settings is not None else KafkaguardSettings()
        consumer = settings.consumer
        if group is not None:
            consumer = consumer.model_copy(update={"group_id": group})
        self.settings = settings.model_copy(update={"consumer": consumer})
        self.registry = registry
        self.group = consumer.group_id
        self.producer = producer if producer is not None else MemoryProducer()
        self.publisher_store = MemoryPublisherDeadLetters()
        self.outbox = MemoryOutbox(self.publisher_store)
        self.store = MemoryConsumerStore(sessions)
        self.publisher = Publisher(
            self.settings, producer=self.producer, outbox=self.outbox, dead_letters=self.publisher_store
        )
        self.retry_waits: list[float] = []
        """The in-process retry delays (seconds) the consumer asked for; none was waited."""
        self._topics = list(topics if topics is not None else consumer.topics)
        self.relay = Relay(
            outbox=self.outbox,
            producer=self.producer,
            topics=TopicsExist(),
            for_aggregate=self.settings.topics.for_aggregate,
            settings=self.settings.relay,
            name="pipeline-relay",
        )
        self._outcomes: list[tuple[Record, Outcome]] = []
        self.source = ProducerSource(self.producer, self._consumed_topics, self._drained)
        applier = Applier(self.store, registry, consumer, stop=_NoWait(self.retry_waits))
        self.worker = Worker(self.source, applier, on_outcome=lambda r, o: self._outcomes.append((r, o)))
        self.restore_job = ListenerRestoreJob(self.store, registry, consumer)

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, *events: Event) -> list[PublishOutcome]:
        """Publish ``events`` through :attr:`publisher` by their modes, each in a committed transaction
        of its own (your own code publishes with ``kit.publisher.publish(session, event)`` in its
        business transaction). Background deliveries have finished when this returns."""
        outcomes: list[PublishOutcome] = []
        for e in events:
            with Session() as session:  # no database: the fakes need only the transaction's commit
                outcomes.append(self.publisher.publish(session, e))
                session.commit()
                for future in Publisher.background_futures(session):
                    future.result()
        return outcomes

    def send(
        self,
        topic: str,
        value: bytes | str | Mapping[str, Any] | None,
        *,
        key: bytes | str | None = None,
        headers: Mapping[str, bytes | str] | Sequence[tuple[str, bytes]] = (),
    ) -> StoredMessage:
        """Put a plain Kafka client's message on ``topic`` (a dict value is sent as JSON); the next
        :meth:`deliver` consumes it. Returns it as stored."""
        raw = json.dumps(value).encode() if isinstance(value, Mapping) else value
        raw = raw.encode() if isinstance(raw, str) else raw
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        encoded = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
        delivered = self.producer.send(topic, raw, key=key.encode() if isinstance(key, str) else key, headers=encoded)
        return next(m for m in self.producer.messages(topic) if m.offset == delivered.offset)

    # -- delivering -------------------------------------------------------------------------------
    def relay_outbox(self) -> RoundResult:
        """Run relay rounds until the outbox holds nothing it can publish now (rows of a key held
        behind a publisher dead letter, and rows hit by a transient fault, stay); return the total."""
        total = RoundResult()
        for _ in range(_RELAY_ROUNDS):
            self.relay.take_shards()
            result = self.relay.run_round()
            total = total.plus(result)
            if result.claimed == 0 or result.transient_failures:
                break
        return total

    def deliver(self) -> list[Outcome]:
        """Relay the outbox, then consume every message not read yet; return their outcomes in order
        (:meth:`delivered` has the records with them). An ``async def`` handler runs in the
        consumer's own event loop; from an ``async def`` test use :meth:`deliver_async`.

        With :attr:`store` down the consumer pauses as in production: the messages not applied stay
        unread and the next ``deliver()`` (with the store back) applies them.
        """
        self.relay_outbox()
        return [outcome for _, outcome in self._consume()]

    async def deliver_async(self) -> list[Outcome]:
        """:meth:`deliver` for a test that runs in an event loop (``async def`` tests): the consumer runs
        in a worker thread with its own loop, so the caller's loop is never blocked."""
        return await asyncio.to_thread(self.deliver)

    def redeliver(self) -> list[Outcome]:
        """Kafka delivers everything again from the first offset (a consumer that crashed before
        committing, a relay that republished): the outcomes, duplicates for what was applied."""
        self.source.from_start()
        return [outcome for _, outcome in self._consume()]

    def delivered(self) -> list[tuple[Record, Outcome]]:
        """Every message consumed so far with its outcome, in order."""
        return list(self._outcomes)

    def _consume(self) -> list[tuple[Record, Outcome]]:
        before = len(self._outcomes)
        self.worker.stopping.clear()
        self.worker.run()
        return self._outcomes[before:]

    def _drained(self) -> None:
        self.worker.stop()  # the run returns after this loop turn, offsets committed

    def _consumed_topics(self) -> list[str]:
        if self._topics:
            return self._topics
        return sorted({m.topic for m in self.producer.messages() if not m.topic.endswith(DLQ_SUFFIX)})

    # -- what happened ----------------------------------------------------------------------------
    def messages(self, topic: str | None = None) -> list[StoredMessage]:
        """What reached Kafka (``topic``, or every topic), in the order it was stored."""
        return self.producer.messages(topic)

    def dead_letters(self, *, key: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """The group's listener dead letters (parked ones included), optionally of ``key`` or ``status``
        (``pending``, ``parked``, ``failed``, ``restored``), oldest first, as the table's columns."""
        return self.store.dead_letters_of(self.group, key=key, status=status)

    def parked(self, key: str | None = None) -> list[dict[str, Any]]:
        """The messages parked behind a dead letter of their key (of ``key``, or all)."""
        return self.dead_letters(key=key, status="parked")

    def publisher_dead_letters(self, *, key: str | None = None) -> list[dict[str, Any]]:
        """The publisher dead letters (events the relay or ``direct``/``http`` mode could not deliver)."""
        return [r for r in self.publisher_store.records if key is None or r["key"] == key]

    # -- restoring --------------------------------------------------------------------------------
    def restore(self, key: str | None = None) -> RunReport:
        """Run the listener restore job now for ``key`` (or every key with open dead letters), due or not:
        each key's records in order through the inbox path, stopping at a key's first failure."""
        keys = [key] if key is not None else self._open_keys()
        return self.restore_job.process_keys(self.group, keys)

    def _open_keys(self) -> list[str]:
        keys = [r["key"] for r in self.store.dead_letters_of(self.group) if r["status"] in OPEN_STATUSES]
        return [k for k in dict.fromkeys(keys) if k is not None]

    # -- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the publisher (finishes background deliveries); the fakes stay readable."""
        self.publisher.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
