"""One entry point for every publish mode: ``Publisher.publish(session, event)``.

The mode comes from settings (``PublishSettings.mode_for(type, aggregate_type)``), so a service
switches an event between ``outbox``, ``direct``, ``background`` and ``http`` by configuration only,
as dailyfeed's ``publish-type`` switch does. Each mode keeps its own guarantee (DESIGN.md):

- ``outbox``: the row is added to the caller's transaction; the relay publishes it;
- ``direct`` / ``http``: delivered now; on failure a dead letter joins the caller's transaction, or
  the transaction is rolled back and PublishUnavailableError raised;
- ``background``: queued on the session and handed to the background publisher only after the
  session's commit (a rolled-back transaction publishes nothing).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from contextlib import AbstractAsyncContextManager, AbstractContextManager, nullcontext
from enum import Enum
from typing import Any

from opentelemetry.trace import Span, use_span
from sqlalchemy import Engine
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import OUTBOX, PublishSource
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.errors import KeyHeldError
from kafkaguard.headers import TRACEPARENT
from kafkaguard.publisher.background import BackgroundOutcome, BackgroundPublisher
from kafkaguard.publisher.direct import DirectPublisher
from kafkaguard.publisher.fallback import dead_letter_or_raise, dead_letter_or_raise_async
from kafkaguard.publisher.http import HttpPublisher
from kafkaguard.publisher.schema_scope import SchemaScope
from kafkaguard.publisher.settings import PublishMode
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.by_database import publisher_dead_letters_for
from kafkaguard.stores.outbox import OutboxWriter, PostgresOutboxWriter
from kafkaguard.stores.publisher_dead_letters import (
    PostgresPublisherDeadLetters,
    PublisherDeadLetterWriter,
    on_mariadb_session,
)
from kafkaguard.topics import RelayKind
from kafkaguard.tracing import spans
from kafkaguard.tracing.context import TRACESTATE, current_headers
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from kafkaguard.transports.kafka_topics import TopicRegistry
from kafkaguard.transports.ports import Producer, Topics, TopicsExist

_OUTBOX = (OUTBOX,)
_PENDING = "kafkaguard.background.pending"
_FUTURES = "kafkaguard.background.futures"


def _with_context(event: Event) -> Event:
    """``event`` carrying the current trace context in its headers (a context the caller put there is kept)."""
    if TRACEPARENT in event.headers:
        return event
    found = current_headers()
    if not found:
        return event
    if TRACESTATE in event.headers:
        found.pop(TRACESTATE, None)
    return dataclasses.replace(event, headers={**event.headers, **found})


def _held(event: Event) -> KeyHeldError:
    return KeyHeldError(f"key {event.key!r} has an open publisher dead letter; event {event.event_id} waits behind it")


class PublishOutcome(Enum):
    """What ``publish`` did with an event (before the caller's commit)."""

    OUTBOX = "outbox"  # in the outbox, published by the relay after the commit
    PUBLISHED = "published"  # acknowledged by Kafka (direct) or accepted by the endpoint (http)
    DEAD_LETTERED = "dead_lettered"  # delivery failed; the dead letter commits with the transaction
    SCHEDULED = "scheduled"  # background: published after the commit


class Publisher:
    """Dispatch events to their configured mode. Create one per process and ``close()`` it at shutdown.

    ``engine``: synchronous engine for background mode's dead-letter table (default: from
    ``settings.database_url``). ``http_transport`` / ``http_async_transport``: httpx transports for tests.
    ``producer``: the Kafka producer of the ``direct`` and ``background`` modes (the port
    :class:`~kafkaguard.transports.ports.Producer`, e.g. ``kafkaguard.testing.MemoryProducer()``);
    default: a :class:`~kafkaguard.transports.kafka_delivery.DeliveryProducer` of ``settings``, made on
    first use. ``topics``: what makes sure a topic exists before producing to it; default: a
    :class:`~kafkaguard.transports.kafka_topics.TopicRegistry` of ``settings`` with the default
    producer, nothing (the producer reports a missing topic) with one passed in. A producer or
    registry passed in is the caller's: :meth:`close` leaves it open.

    ``outbox``: where ``outbox`` mode adds events in the caller's transaction (the port
    :class:`~kafkaguard.stores.outbox.OutboxWriter`, e.g. ``kafkaguard.testing.MemoryOutbox()``);
    default: the ``outbox`` table through the caller's session. ``dead_letters``: where ``direct``,
    ``http`` and ``background`` modes store events they could not deliver, and whose open records
    hold a key (:class:`~kafkaguard.stores.publisher_dead_letters.PublisherDeadLetterWriter`, e.g.
    ``MemoryPublisherDeadLetters()``); default: the ``kafka_publisher_dead_letters`` table (through
    the caller's session; background mode through ``engine``). With both in memory no statement
    runs on the caller's session: it only has to commit or roll back.
    """

    def __init__(
        self,
        settings: KafkaguardSettings,
        *,
        engine: Engine | None = None,
        http_transport: Any = None,
        http_async_transport: Any = None,
        producer: Producer | None = None,
        topics: Topics | None = None,
        outbox: OutboxWriter | None = None,
        dead_letters: PublisherDeadLetterWriter | None = None,
    ) -> None:
        self.settings = settings
        spans.configure(settings.tracing)
        # With Debezium as the relay the outbox is written insert-then-delete (relay.debezium).
        self._debezium = settings.relay.kind is RelayKind.DEBEZIUM
        self._hold = settings.publish.hold_key_behind_dead_letters
        self._schema = SchemaScope(settings.db_schema)
        self._outbox = outbox if outbox is not None else PostgresOutboxWriter(delete_after_insert=self._debezium)
        self._own_dead_letters = dead_letters is None
        self._dead_letters = dead_letters if dead_letters is not None else publisher_dead_letters_for(engine)
        self._engine = engine
        self._owns_engine = False
        self._producer = producer
        self._owns_producer = producer is None
        # A producer passed in without a registry knows its topics (the fake) or reports a missing one.
        self._topics = topics if topics is not None or producer is None else TopicsExist()
        self._owns_topics = topics is None and producer is None
        self._direct: DirectPublisher | None = None
        self._background: BackgroundPublisher | None = None
        self._http = HttpPublisher(
            settings.publish,
            for_aggregate=settings.topics.for_aggregate,
            transport=http_transport,
            async_transport=http_async_transport,
            dead_letters=self._dead_letters,
        )

    @classmethod
    def from_settings(
        cls,
        settings: KafkaguardSettings | None = None,
        *,
        engine: Engine | None = None,
        http_transport: Any = None,
        http_async_transport: Any = None,
        producer: Producer | None = None,
        topics: Topics | None = None,
        dead_letters: PublisherDeadLetterWriter | None = None,
    ) -> Publisher:
        """A publisher of ``settings`` (default: ``KafkaguardSettings()``, from ``KAFKAGUARD_*`` and the
        TOML file): modes from ``settings.publish``, Kafka at ``settings.bootstrap_servers``, topics
        from ``settings.topics``. Kafka clients are made on first use of a mode that needs them.

        Publish with :meth:`publish` (a ``Session``) or :meth:`publish_async` (an ``AsyncSession``),
        in the caller's transaction; :meth:`close` it at shutdown. Arguments as for the constructor
        (``dead_letters``: e.g. ``MongoPublisherDeadLetters.from_url(...)`` for dailyfeed's shape).
        """
        return cls(
            settings if settings is not None else KafkaguardSettings(),
            engine=engine,
            http_transport=http_transport,
            http_async_transport=http_async_transport,
            producer=producer,
            topics=topics,
            dead_letters=dead_letters,
        )

    def mode_for(self, event: Event) -> PublishMode:
        """The configured mode of ``event``."""
        return self.settings.publish.mode_for(event.type, event.aggregate_type)

    def _kafka(self) -> tuple[Producer, Topics]:
        """The producer and topic registry, the real ones of ``settings`` made now if none was passed in."""
        s = self.settings
        if self._producer is None:
            budget = max(s.publish.direct_timeout, s.publish.background_timeout)
            self._producer = DeliveryProducer.from_settings(s, message_timeout=budget)
        if self._topics is None:
            self._topics = TopicRegistry.from_settings(s)
        return self._producer, self._topics

    def direct(self) -> DirectPublisher:
        """The ``direct`` mode publisher (created on first use)."""
        if self._direct is None:
            producer, topics = self._kafka()
            self._direct = DirectPublisher(
                producer,
                topics,
                timeout=self.settings.publish.direct_timeout,
                for_aggregate=self.settings.topics.for_aggregate,
                dead_letters=self._dead_letters,
            )
        return self._direct

    def background(self) -> BackgroundPublisher:
        """The ``background`` mode publisher (created on first use)."""
        if self._background is None:
            producer, topics = self._kafka()
            store: PublisherDeadLetterWriter | None = self._dead_letters
            if self._own_dead_letters:  # the table, in transactions of an engine of its own
                if self._engine is None and self.settings.database_url:
                    self._engine = sync_engine(self.settings.database_url, schema=self.settings.db_schema)
                    self._owns_engine = True
                store = publisher_dead_letters_for(self._engine) if self._engine is not None else None
            p = self.settings.publish
            self._background = BackgroundPublisher(
                producer,
                topics,
                policy=p.background_retry,
                attempt_timeout=p.background_timeout,
                for_aggregate=self.settings.topics.for_aggregate,
                dead_letters=store,
            )
        return self._background

    def publish(self, session: Session, event: Event) -> PublishOutcome:
        """Publish ``event`` by its mode as part of ``session``'s transaction (which the caller commits).

        kafkaguard's tables are found in ``settings.db_schema`` whatever the session's search_path
        (:mod:`kafkaguard.publisher.schema_scope`); a schema without them raises
        :class:`~kafkaguard.errors.SchemaNotReadyError` at the first publish, before anything is written.
        """
        mode = self.mode_for(event)
        if not spans.active():
            return self._publish_in(session, event, mode)
        span = self._span(event, mode)
        try:
            with use_span(span, end_on_exit=False):
                outcome = self._publish_in(session, _with_context(event), mode)
        except BaseException as exc:
            spans.finish(span, "failed", error=exc)
            raise
        spans.finish(span, outcome.value, failed=outcome is PublishOutcome.DEAD_LETTERED)
        return outcome

    def _publish_in(self, session: Session, event: Event, mode: PublishMode) -> PublishOutcome:
        if mode is PublishMode.BACKGROUND:  # nothing in the caller's transaction
            self._after_commit(session, event)
            return PublishOutcome.SCHEDULED
        with self._scope(session, mode):
            return self._publish(session, event, mode)

    def _span(self, event: Event, mode: PublishMode) -> Span:
        return spans.publish_span(
            topic=self._topic(event),
            key=event.key,
            event_id=str(event.event_id),
            event_type=event.type,
            mode=mode.value,
            creates=mode in (PublishMode.OUTBOX, PublishMode.BACKGROUND),
        )

    def _in_postgres(self, mode: PublishMode) -> bool:
        """Whether ``mode``'s statements go to PostgreSQL tables on the caller's session (not to fakes)."""
        if mode is PublishMode.OUTBOX:
            return isinstance(self._outbox, PostgresOutboxWriter)
        return isinstance(self._dead_letters, PostgresPublisherDeadLetters)

    def _scope(self, session: Session, mode: PublishMode) -> AbstractContextManager[None]:
        # On MariaDB the schema is the database the session's engine connects to: nothing to put first.
        if not self._in_postgres(mode) or on_mariadb_session(session):
            return nullcontext()
        return self._schema.around(session, _OUTBOX if mode is PublishMode.OUTBOX else ())

    def _scope_async(self, session: AsyncSession, mode: PublishMode) -> AbstractAsyncContextManager[None]:
        if not self._in_postgres(mode) or on_mariadb_session(session.sync_session):
            return nullcontext()
        return self._schema.around_async(session, _OUTBOX if mode is PublishMode.OUTBOX else ())

    def _publish(self, session: Session, event: Event, mode: PublishMode) -> PublishOutcome:
        if mode is PublishMode.OUTBOX:
            self._outbox.add(session, [event])
            return PublishOutcome.OUTBOX
        source = PublishSource.DIRECT if mode is PublishMode.DIRECT else PublishSource.HTTP
        if self._hold and self._dead_letters.key_held(session, event.key):
            dead_letter_or_raise(
                self._dead_letters, session, event, topic=self._topic(event), source=source, error=_held(event)
            )
            return PublishOutcome.DEAD_LETTERED
        publish = self.direct().publish if mode is PublishMode.DIRECT else self._http.publish
        ok = publish(session, event)
        return PublishOutcome.PUBLISHED if ok else PublishOutcome.DEAD_LETTERED

    async def publish_async(self, session: AsyncSession, event: Event) -> PublishOutcome:
        """Asyncio form of :meth:`publish`: no step blocks the event loop."""
        mode = self.mode_for(event)
        if not spans.active():
            return await self._publish_async_in(session, event, mode)
        span = self._span(event, mode)
        try:
            with use_span(span, end_on_exit=False):
                outcome = await self._publish_async_in(session, _with_context(event), mode)
        except BaseException as exc:
            spans.finish(span, "failed", error=exc)
            raise
        spans.finish(span, outcome.value, failed=outcome is PublishOutcome.DEAD_LETTERED)
        return outcome

    async def _publish_async_in(self, session: AsyncSession, event: Event, mode: PublishMode) -> PublishOutcome:
        if mode is PublishMode.BACKGROUND:
            self._after_commit(session.sync_session, event)
            return PublishOutcome.SCHEDULED
        async with self._scope_async(session, mode):
            return await self._publish_async(session, event, mode)

    async def _publish_async(self, session: AsyncSession, event: Event, mode: PublishMode) -> PublishOutcome:
        if mode is PublishMode.OUTBOX:
            await self._outbox.add_async(session, [event])
            return PublishOutcome.OUTBOX
        source = PublishSource.DIRECT if mode is PublishMode.DIRECT else PublishSource.HTTP
        if self._hold and await session.run_sync(lambda sync: self._dead_letters.key_held(sync, event.key)):
            await dead_letter_or_raise_async(
                self._dead_letters, session, event, topic=self._topic(event), source=source, error=_held(event)
            )
            return PublishOutcome.DEAD_LETTERED
        if mode is PublishMode.DIRECT:
            ok = await self.direct().publish_async(session, event)
        else:
            ok = await self._http.publish_async(session, event)
        return PublishOutcome.PUBLISHED if ok else PublishOutcome.DEAD_LETTERED

    def _topic(self, event: Event) -> str:
        return self.settings.topics.for_aggregate(event.aggregate_type)

    def _after_commit(self, session: Session, event: Event) -> None:
        """Queue ``event`` on the session; hand it to the background publisher after the commit."""
        pending: list[Event] = session.info.setdefault(_PENDING, [])
        if not session.info.get(_FUTURES):
            session.info[_FUTURES] = []

            def committed(sess: Session) -> None:
                events, sess.info[_PENDING] = list(sess.info.get(_PENDING, [])), []
                sess.info[_FUTURES].extend(self.background().submit(e) for e in events)

            def rolled_back(sess: Session) -> None:
                sess.info[_PENDING] = []

            sa_event.listen(session, "after_commit", committed)
            sa_event.listen(session, "after_rollback", rolled_back)
        pending.append(event)

    @staticmethod
    def background_futures(session: Session | AsyncSession) -> list[concurrent.futures.Future[BackgroundOutcome]]:
        """Futures of the background deliveries started by ``session``'s commits (for tests and metrics)."""
        sync = session.sync_session if isinstance(session, AsyncSession) else session
        futures: list[concurrent.futures.Future[BackgroundOutcome]] = sync.info.get(_FUTURES, [])
        return futures

    def close(self) -> None:
        """Finish background deliveries, flush the producer, close HTTP and owned engines; the Kafka
        clients it made are let go (their connections close now, not when the publisher is collected)."""
        if self._background is not None:
            self._background.close()
        if self._producer is not None and self._owns_producer:
            self._producer.close()
            self._producer = None
            if self._owns_topics:
                self._topics = None  # the admin client of the registry it made
            self._direct = self._background = None
        self._http.close()
        if self._owns_engine and self._engine is not None:
            self._engine.dispose()
