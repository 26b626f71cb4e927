"""The outbox relay: claim rows of the shards this instance owns, publish them, remove them after the ack.

Guarantees (DESIGN.md, "Relay"):

- no loss: a row leaves the outbox only in the transaction that follows its delivery report (or
  that stores its publisher dead letter); a crash before that commit republishes it (at-least-once,
  consumers dedupe by event id);
- per-key commit order with any number of instances: a key lives in one shard, a shard is owned by
  one instance through a session advisory lock on the connection that claims its rows, and a shard
  changes hands only between rounds or when its owner's connection is gone;
- Kafka down: nothing is dead-lettered; the relay backs off (up to ``max_backoff``) and resumes;
- PostgreSQL refusing the login before the first connection (wrong password) raises
  :class:`~kafkaguard.errors.AuthenticationError` from :meth:`Relay.run`: that is no outage;
- a rejected event (too large, topic refused, not an event) goes to ``kafka_publisher_dead_letters``
  and, with ``block_key_on_dead_letter``, later rows of its key wait behind it;
- totality: nothing a row contains stops the relay. A row that is not an event (deeper than
  ``max_payload_depth``, not an object, no key, ...) is a dead letter; the dead letter is copied
  from the row by PostgreSQL (the payload is never decoded); if PostgreSQL refuses it for a data
  reason, a ``kafkaguard_last_resort`` row takes its place in the same transaction.

Shard balancing: each instance counts live instances (presence locks in ``pg_locks``), takes free
shards up to ``ceil(64 / live)`` and gives back any above that share, at most once per poll interval.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kafkaguard.db.columns import OUTBOX_SHARDS
from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.raw_headers import encode as encode_headers
from kafkaguard.relay import shards as S
from kafkaguard.relay.deliver import (
    InFlight,
    Sent,
    describe,
    finish_publish,
    no_topic_limits,
    start_publish,
)
from kafkaguard.relay.plan import RowOutcome, plan_round
from kafkaguard.relay.settings import RelayKind, RelaySettings
from kafkaguard.stores.outbox import DeadLetter, OutboxStore
from kafkaguard.stores.publisher_dead_letters import outbox_params
from kafkaguard.tracing import spans
from kafkaguard.transports.ports import Producer, Topics

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundResult:
    """What one round did."""

    claimed: int = 0
    published: int = 0
    dead_lettered: int = 0
    transient_failures: int = 0

    def plus(self, other: RoundResult) -> RoundResult:
        """Both results added up."""
        return RoundResult(
            self.claimed + other.claimed,
            self.published + other.published,
            self.dead_lettered + other.dead_lettered,
            self.transient_failures + other.transient_failures,
        )


class RelayHook(Protocol):
    """What the relay reports (metrics implement it: :mod:`kafkaguard.metrics.relay_hook`).

    Called in the relay's thread; :meth:`settled` only after the settle transaction committed, so a
    counted event is never rolled back.
    """

    def settled(self, published: Sequence[Sent], dead_lettered: Sequence[Sent], seconds: float) -> None:
        """A batch settled: ``published`` acknowledged and removed, ``dead_lettered`` stored; ``seconds``
        from its claim to the end of its settle."""

    def error(self, kind: str) -> None:
        """A round failed: ``kind`` is ``database`` (the outbox store is away) or ``kafka``."""

    def succeeded(self) -> None:
        """A round ended without a failure: its batches settled, or nothing was due (an idle relay
        is a healthy one; "time since the last success" grows only while rounds fail or hang)."""


class Relay:
    """One relay instance. ``run(stop)`` loops until ``stop`` is set; safe to run several at once.

    Ports: ``outbox`` (an :class:`~kafkaguard.stores.outbox.OutboxStore`), ``producer`` (a
    :class:`Producer`; ``new_producer`` makes a replacement after a fatal error), ``topics``
    (checks or creates a topic before its first message), ``for_aggregate`` (aggregate type →
    topic), ``hook`` (a :class:`RelayHook`, e.g. metrics; None: nothing reported). ``topic_limits``:
    topic → ``max.message.bytes`` or None if unknown (default: unknown, only the producer's limit
    counts). The relay owns the producer and the store: :meth:`run` closes both when it ends.

    Build one with :meth:`from_settings`; the constructor takes the ports for tests and custom wiring
    (a :class:`~kafkaguard.testing.MemoryOutbox` and a fake producer run rounds with no database and
    no Kafka).
    """

    @classmethod
    def from_settings(
        cls, settings: KafkaguardSettings, *, name: str | None = None, hook: RelayHook | None = None
    ) -> Relay:
        """A relay of the outbox in ``settings.database_url`` (schema ``settings.db_schema``) to the Kafka
        at ``settings.bootstrap_servers``, with ``settings.relay``, the topic naming and creation of
        ``settings.topics`` and the client settings of ``settings.kafka_producer_overrides()``
        (``kafka_security``, then ``producer``).

        ``name`` appears in its log lines (default ``relay-<pid>``); ``hook`` receives what it did
        (:func:`kafkaguard.metrics.relay_hook.relay_metrics` counts it into the Prometheus metrics).
        Run it with ``run(stop)`` in a thread of its own (``stop``: a :class:`threading.Event`).
        Raises :class:`~kafkaguard.errors.ConfigurationError` without a database URL, or when
        ``relay.kind`` is ``debezium`` (Debezium relays that outbox; two relays would publish twice).
        A missing schema raises :class:`~kafkaguard.errors.SchemaNotReadyError` from :meth:`run`.
        """
        from kafkaguard.stores.by_database import outbox_store_for
        from kafkaguard.transports.kafka_topics import TopicRegistry

        spans.configure(settings.tracing)
        if settings.relay.kind is RelayKind.DEBEZIUM:
            raise ConfigurationError(
                "relay.kind is 'debezium': Debezium relays this outbox (rows are deleted as they are written), "
                "so kafkaguard's relay must not run; set KAFKAGUARD_RELAY__KIND=kafkaguard to switch back"
            )
        if not settings.database_url:
            raise ConfigurationError("a database URL is needed (KAFKAGUARD_DATABASE_URL or database_url=...)")
        return cls.for_database(
            outbox=outbox_store_for(settings.database_url, schema=settings.db_schema),
            schema=settings.db_schema,
            bootstrap=settings.bootstrap_servers,
            settings=settings.relay,
            topics=TopicRegistry.from_settings(settings),
            for_aggregate=settings.topics.for_aggregate,
            producer_overrides=settings.kafka_producer_overrides(),
            name=name,
            hook=hook,
        )

    @classmethod
    def for_database(
        cls,
        *,
        conninfo: str | None = None,
        outbox: OutboxStore | None = None,
        bootstrap: str,
        settings: RelaySettings,
        topics: Topics,
        for_aggregate: Callable[[str], str],
        producer_overrides: Mapping[str, Any] | None = None,
        name: str | None = None,
        hook: RelayHook | None = None,
        topic_limits: Callable[[str], int | None] | None = None,
        schema: str | None = None,
    ) -> Relay:
        """A relay over the real adapters: ``outbox`` (e.g. from
        :func:`~kafkaguard.stores.by_database.outbox_store_for`, PostgreSQL or MariaDB by URL) or
        :class:`~kafkaguard.stores.outbox.PostgresOutbox` of ``conninfo`` (libpq, search_path first
        ``schema``; its tables are checked at connect), and a
        :class:`~kafkaguard.transports.kafka_delivery.DeliveryProducer` of ``bootstrap`` (replaced
        after a fatal error). ``topic_limits`` default: asked of Kafka once per topic, on first use
        (:class:`~kafkaguard.relay.limits.TopicLimits`), so a relay that never publishes asks nothing.
        """
        from kafkaguard.relay.limits import TopicLimits
        from kafkaguard.stores.outbox import PostgresOutbox

        if outbox is None and conninfo is None:
            raise ConfigurationError("Relay.for_database needs an outbox store or a libpq conninfo")
        from kafkaguard.transports.kafka_delivery import DeliveryProducer

        overrides = dict(producer_overrides or {})
        limits: list[Callable[[str], int | None]] = [topic_limits] if topic_limits is not None else []

        def topic_limit(topic: str) -> int | None:
            if not limits:
                limits.append(TopicLimits(bootstrap, overrides))
            return limits[0](topic)

        def new_producer() -> DeliveryProducer:
            return DeliveryProducer(bootstrap, message_timeout=settings.delivery_timeout, overrides=overrides)

        return cls(
            outbox=outbox if outbox is not None else PostgresOutbox(str(conninfo), schema=schema),
            producer=new_producer(),
            new_producer=new_producer,
            topics=topics,
            for_aggregate=for_aggregate,
            settings=settings,
            name=name,
            hook=hook,
            topic_limits=topic_limit,
        )

    def __init__(
        self,
        *,
        outbox: OutboxStore,
        producer: Producer,
        topics: Topics,
        for_aggregate: Callable[[str], str],
        settings: RelaySettings,
        name: str | None = None,
        hook: RelayHook | None = None,
        topic_limits: Callable[[str], int | None] = no_topic_limits,
        new_producer: Callable[[], Producer] | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.hook = hook
        self.name = name or f"relay-{os.getpid()}"
        self._producer = producer
        self._new_producer = new_producer
        self._topics = topics
        self._for_aggregate = for_aggregate
        self._topic_limits = topic_limits
        self._held: set[int] = set()
        self._last_balance = 0.0
        self._start = random.randrange(OUTBOX_SHARDS)  # noqa: S311 - spreads instances, not security
        self._last_cleanup = 0.0

    @property
    def held_shards(self) -> frozenset[int]:
        """Shards this instance owns now."""
        return frozenset(self._held)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; survive database and Kafka outages by backing off."""
        failures = 0
        outage = self.outbox.outage_errors
        try:
            while not stop.is_set():
                try:
                    self.take_shards()
                    result = self.run_round()
                    self._maybe_cleanup()
                except outage as exc:
                    failures += 1
                    if self.hook is not None:
                        self.hook.error("database")
                    logger.warning("%s: database problem (%s); reconnecting", self.name, type(exc).__name__)
                    self._disconnect()
                    stop.wait(self._backoff(failures))
                    continue
                if result.transient_failures:
                    failures += 1
                    if self.hook is not None:
                        self.hook.error("kafka")
                    stop.wait(self._backoff(failures))
                    continue
                failures = 0
                if self.hook is not None:
                    self.hook.succeeded()
                if result.claimed < self.settings.batch_size:
                    try:
                        self._wait_for_work(stop)
                    except outage as exc:
                        # The LISTEN connection died while idle (PostgreSQL restarted): reconnect next
                        # round instead of letting the error end the relay.
                        logger.warning(
                            "%s: database problem while idle (%s); reconnecting", self.name, type(exc).__name__
                        )
                        self._disconnect()
        finally:
            self._disconnect()
            self._producer.close(5)

    def _backoff(self, failures: int) -> float:
        return float(min(self.settings.max_backoff, 0.2 * 2 ** min(failures, 10)))

    def _ensure_connected(self) -> None:
        if self.outbox.connected:
            return
        where = self.outbox.connect()
        self._held.clear()
        self._last_balance = 0.0
        logger.info("%s: connected (schema %s)", self.name, where)

    def _disconnect(self) -> None:
        self.outbox.close()
        if self._held:
            logger.info("%s: released %d shards (disconnected)", self.name, len(self._held))
        self._held.clear()

    def take_shards(self) -> frozenset[int]:
        """Connect the outbox if needed, then take or give back shards toward this instance's fair
        share (at most once per poll interval while it holds some); return the shards held."""
        self._ensure_connected()
        self._balance()
        return self.held_shards

    def _balance(self) -> None:
        now = time.monotonic()
        if self._held and now - self._last_balance < self.settings.poll_interval:
            return
        self._last_balance = now
        share = S.fair_share(OUTBOX_SHARDS, self.outbox.live_instances())
        give_back = S.to_release(self._held, share)
        if give_back:
            self.outbox.unlock_shards(give_back)
            self._held.difference_update(give_back)
        candidates = S.to_try(self._held, OUTBOX_SHARDS, share, self._start)
        taken = self.outbox.try_lock_shards(candidates, share - len(self._held))
        self._held.update(taken)
        if give_back or taken:
            logger.info(
                "%s: shards now %d (share %d; took %d, gave back %d)",
                self.name,
                len(self._held),
                share,
                len(taken),
                len(give_back),
            )

    def _producer_now(self) -> Producer:
        fatal = getattr(self._producer, "fatal_error", None)
        if fatal and self._new_producer is not None:
            logger.error("%s: producer failed fatally (%s); starting a new one", self.name, fatal)
            self._producer.close(1)
            self._producer = self._new_producer()
        return self._producer

    def run_round(self) -> RoundResult:
        """Publish the owned shards' visible rows in batches until a claim comes back short.

        Pipelined: the next batch is claimed and handed to the producer while the broker is still
        acknowledging the previous one, so the database's and Kafka's round trips overlap. Batches
        are settled in order, each in its own transaction (dead letters stored, acknowledged rows
        removed); a key that failed in one batch counts as failed in the next (its acknowledged
        rows there stay and are sent again after the failed one). Stops early on a transient
        failure or after ``poll_interval`` seconds (so shards are balanced), and never returns with
        a batch in flight. Publishes nothing before :meth:`take_shards` gave it shards.
        """
        if not self._held:
            return RoundResult()
        shards = sorted(self._held)
        block = self.settings.block_key_on_dead_letter
        until = time.monotonic() + self.settings.poll_interval
        total = RoundResult()
        stopped: set[str] = set()
        flight: InFlight | None = None
        while True:
            started = time.monotonic()
            rows = self.outbox.claim(
                shards,
                self.settings.batch_size,
                skip_blocked_keys=block,
                in_flight=flight.ids if flight is not None else (),
            )
            following = (
                self._send_batch(rows, stopped | (flight.stopped if flight else set()), started) if rows else None
            )
            if flight is not None:
                result, stopped = self._settle(flight, stopped)
                total = total.plus(result)
                if result.transient_failures:
                    # Back off; the batch produced meanwhile is settled below (it was once left
                    # unsettled here and the settled one settled twice: its acked rows were resent).
                    flight = following
                    break
            flight = following
            more = len(rows) == self.settings.batch_size and time.monotonic() < until
            if flight is None or not more:
                break
        if flight is not None:
            total = total.plus(self._settle(flight, stopped)[0])
        return total

    def _send_batch(self, rows: Sequence[Any], stopped: set[str], started: float) -> InFlight:
        if spans.active():
            flight = self._start_publish(rows, stopped, started)
            produced = flight.produced
            flight.span = spans.relay_span(
                [s.topic for s in produced], [s.message.headers for s in produced if s.message is not None]
            )
            return flight
        return self._start_publish(rows, stopped, started)

    def _start_publish(self, rows: Sequence[Any], stopped: set[str], started: float) -> InFlight:
        return start_publish(
            rows,
            producer=self._producer_now(),
            topics=self._topics,
            for_aggregate=self._for_aggregate,
            timeout=self.settings.delivery_timeout,
            block_key=self.settings.block_key_on_dead_letter,
            stopped=stopped,
            started=started,
            max_depth=self.settings.max_payload_depth,
            topic_limit=self._topic_limits,
        )

    def _settle(self, flight: InFlight, stopped: set[str]) -> tuple[RoundResult, set[str]]:
        """Wait for ``flight``'s acks; store its dead letters and remove its settled rows in one transaction."""
        block = self.settings.block_key_on_dead_letter
        timeout = self.settings.delivery_timeout
        sent = finish_publish(flight, producer=self._producer, timeout=timeout, block_key=block)
        plan = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent], block_key=block, stopped=stopped)
        try:
            self.outbox.settle(
                [self._dead_letter(s) for s in plan.dead_letter],
                [s.row.id for s in plan.remove + plan.dead_letter],
                delete=self.settings.delete_published,
            )
        except BaseException as exc:
            if flight.span is not None:
                spans.finish(flight.span, "settle_failed", error=exc)
            raise
        if flight.span is not None:
            flight.span.set_attribute("kafkaguard.relay.published", len(plan.remove))
            flight.span.set_attribute("kafkaguard.relay.dead_lettered", len(plan.dead_letter))
            spans.finish(flight.span, "settled", failed=bool(plan.dead_letter))
        if self.hook is not None:
            self.hook.settled(plan.remove, plan.dead_letter, time.monotonic() - flight.started)
        # Rows only held behind an earlier row of their key (no error of their own) are not failures.
        failed = [s for s in sent if s.outcome is RowOutcome.TRANSIENT and s.error is not None]
        transient = len(failed)
        if failed:
            logger.warning(
                "%s: %d of %d events not delivered now, first %s: %s; they stay in the outbox and are retried",
                self.name,
                transient,
                len(sent),
                describe(failed[0].row, failed[0].topic),
                failed[0].error,
            )
        if plan.kept_after_failure:
            logger.warning(
                "%s: %d acknowledged events kept behind a failed event of their key; they will be sent again",
                self.name,
                len(plan.kept_after_failure),
            )
        return RoundResult(len(sent), len(plan.remove), len(plan.dead_letter), transient), plan.stopped

    def _dead_letter(self, item: Sent) -> DeadLetter:
        """The publisher dead letter of a rejected row, built without decoding anything of the row."""
        assert item.error is not None
        logger.error(
            "%s (type %s) rejected, stored as a publisher dead letter: %s",
            describe(item.row, item.topic),
            short(item.row.type),
            short(item.error, 500),
        )
        raw = encode_headers(item.message.headers) if item.message is not None else None
        return DeadLetter(item.row.id, outbox_params(item.row.id, topic=item.topic, error=item.error), raw)

    def _maybe_cleanup(self) -> None:
        if self.settings.delete_published or not self.outbox.connected:
            return
        now = time.monotonic()
        if now - self._last_cleanup >= 60:
            self._last_cleanup = now
            self.outbox.cleanup_published(self.settings.published_retention)

    def _wait_for_work(self, stop: threading.Event) -> None:
        """Sleep until the outbox announces new rows, the poll interval passes, or ``stop``."""
        deadline = time.monotonic() + self.settings.poll_interval
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self.outbox.wait_for_work(min(left, 0.5)):
                return
