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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg

from kafkaguard.db.columns import OUTBOX_NOTIFY_CHANNEL, OUTBOX_SHARDS, PublishSource
from kafkaguard.db.engine import libpq_conninfo
from kafkaguard.db.login import login_refused, refused_reason
from kafkaguard.db.readiness import RELAY_TABLES, require_tables_psycopg
from kafkaguard.errors import ConfigurationError, SchemaNotReadyError
from kafkaguard.logtext import short
from kafkaguard.metrics.registry import Metrics
from kafkaguard.publisher.dead_letters import outbox_params
from kafkaguard.raw_headers import encode as encode_headers
from kafkaguard.relay import shards as S
from kafkaguard.relay import store
from kafkaguard.relay.deliver import InFlight, Sent, describe, finish_publish, start_publish
from kafkaguard.relay.limits import TopicLimits
from kafkaguard.relay.plan import Outcome, plan_round
from kafkaguard.relay.rows import OutboxRow
from kafkaguard.relay.settings import RelayKind, RelaySettings
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from kafkaguard.transports.kafka_topics import TopicRegistry

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


class Relay:
    """One relay instance. ``run(stop)`` loops until ``stop`` is set; safe to run several at once.

    ``conninfo``: libpq string whose search_path starts with kafkaguard's schema
    (:func:`kafkaguard.db.engine.libpq_conninfo`). ``for_aggregate``: aggregate type → topic.
    ``topic_limits``: topic → ``max.message.bytes`` or None if unknown (default: asked of Kafka
    once per topic, :class:`~kafkaguard.relay.limits.TopicLimits`). ``schema``: the schema the
    conninfo puts first; its tables are checked at connect (None: the search_path's first schema),
    a missing one raises :class:`~kafkaguard.errors.SchemaNotReadyError` from :meth:`run`.

    Build one with :meth:`from_settings`; the constructor takes the ports for tests and custom wiring.
    """

    @classmethod
    def from_settings(
        cls, settings: KafkaguardSettings, *, name: str | None = None, metrics: Metrics | None = None
    ) -> Relay:
        """A relay of the outbox in ``settings.database_url`` (schema ``settings.db_schema``) to the Kafka
        at ``settings.bootstrap_servers``, with ``settings.relay``, the topic naming and creation of
        ``settings.topics`` and the librdkafka overrides of ``settings.producer``.

        ``name`` appears in its log lines (default ``relay-<pid>``). Run it with ``run(stop)`` in a
        thread of its own (``stop``: a :class:`threading.Event`). Raises
        :class:`~kafkaguard.errors.ConfigurationError` without a database URL, or when
        ``relay.kind`` is ``debezium`` (Debezium relays that outbox; two relays would publish twice).
        """
        if settings.relay.kind is RelayKind.DEBEZIUM:
            raise ConfigurationError(
                "relay.kind is 'debezium': Debezium relays this outbox (rows are deleted as they are written), "
                "so kafkaguard's relay must not run; set KAFKAGUARD_RELAY__KIND=kafkaguard to switch back"
            )
        if not settings.database_url:
            raise ConfigurationError("a database URL is needed (KAFKAGUARD_DATABASE_URL or database_url=...)")
        topics = TopicRegistry(
            settings.bootstrap_servers,
            partitions=settings.topics.partitions,
            replication=settings.topics.replication,
            create_missing=settings.topics.create_missing,
            overrides=settings.producer,
        )
        return cls(
            conninfo=libpq_conninfo(settings.database_url, schema=settings.db_schema),
            schema=settings.db_schema,
            bootstrap=settings.bootstrap_servers,
            settings=settings.relay,
            topics=topics,
            for_aggregate=settings.topics.for_aggregate,
            producer_overrides=settings.producer,
            name=name,
            metrics=metrics,
        )

    def __init__(
        self,
        *,
        conninfo: str,
        bootstrap: str,
        settings: RelaySettings,
        topics: TopicRegistry,
        for_aggregate: Any,
        producer_overrides: Mapping[str, Any] | None = None,
        name: str | None = None,
        metrics: Metrics | None = None,
        topic_limits: Callable[[str], int | None] | None = None,
        schema: str | None = None,
    ) -> None:
        self.settings = settings
        self.schema = schema
        self.metrics = metrics
        self.name = name or f"relay-{os.getpid()}"
        self._conninfo = conninfo
        self._bootstrap = bootstrap
        self._overrides = dict(producer_overrides or {})
        self._topics = topics
        self._for_aggregate = for_aggregate
        self._topic_limits = topic_limits
        self._producer: DeliveryProducer | None = None
        self._work: store.Conn | None = None
        self._listen: store.Conn | None = None
        self._spaces = (0, 0)
        self._held: set[int] = set()
        self._last_balance = 0.0
        self._start = random.randrange(OUTBOX_SHARDS)  # noqa: S311 - spreads instances, not security
        self._last_cleanup = 0.0
        self._connected_once = False

    @property
    def held_shards(self) -> frozenset[int]:
        """Shards this instance owns now."""
        return frozenset(self._held)

    def run(self, stop: threading.Event) -> None:
        """Relay until ``stop`` is set; survive database and Kafka outages by backing off."""
        failures = 0
        try:
            while not stop.is_set():
                try:
                    self._ensure_connected()
                    self._balance()
                    result = self.run_round()
                    self._maybe_cleanup()
                except psycopg.Error as exc:
                    refused = refused_reason(exc)
                    if refused is not None and not self._connected_once:
                        # A wrong password is not an outage: stop with one line instead of retrying forever.
                        raise login_refused(self._conninfo, refused) from None
                    failures += 1
                    if self.metrics is not None:
                        self.metrics.relay_errors.labels("database").inc()
                    logger.warning("%s: database problem (%s); reconnecting", self.name, refused or type(exc).__name__)
                    self._disconnect()
                    stop.wait(self._backoff(failures))
                    continue
                if result.transient_failures:
                    failures += 1
                    if self.metrics is not None:
                        self.metrics.relay_errors.labels("kafka").inc()
                    stop.wait(self._backoff(failures))
                    continue
                failures = 0
                if result.claimed < self.settings.batch_size:
                    try:
                        self._wait_for_work(stop)
                    except psycopg.Error as exc:
                        # The LISTEN connection died while idle (PostgreSQL restarted): reconnect next
                        # round instead of letting the error end the relay.
                        logger.warning(
                            "%s: database problem while idle (%s); reconnecting", self.name, type(exc).__name__
                        )
                        self._disconnect()
        finally:
            self._disconnect()
            if self._producer is not None:
                self._producer.close(5)

    def _backoff(self, failures: int) -> float:
        return float(min(self.settings.max_backoff, 0.2 * 2 ** min(failures, 10)))

    def _ensure_connected(self) -> None:
        if self._work is not None and self._listen is not None:
            return
        self._work = psycopg.connect(self._conninfo, autocommit=True)
        try:  # a schema that was never upgraded fails here, in one line, not as a TypeError later
            require_tables_psycopg(self._work, self.schema, RELAY_TABLES)
        except SchemaNotReadyError:
            self._disconnect()
            raise
        shard_space, presence_space, schema = store.namespaces(self._work)
        self._spaces = (shard_space, presence_space)
        store.register_presence(self._work, presence_space)
        store.prepare_session(self._work)
        self._listen = psycopg.connect(self._conninfo, autocommit=True)
        self._listen.execute(f"LISTEN {OUTBOX_NOTIFY_CHANNEL}")
        self._held.clear()
        self._last_balance = 0.0
        self._connected_once = True
        logger.info("%s: connected (schema %s)", self.name, schema)

    def _disconnect(self) -> None:
        for conn in (self._work, self._listen):
            if conn is not None:
                conn.close()
        self._work = self._listen = None
        if self._held:
            logger.info("%s: released %d shards (disconnected)", self.name, len(self._held))
        self._held.clear()

    def _balance(self) -> None:
        now = time.monotonic()
        if self._held and now - self._last_balance < self.settings.poll_interval:
            return
        assert self._work is not None
        self._last_balance = now
        shard_space, presence_space = self._spaces
        share = S.fair_share(OUTBOX_SHARDS, store.live_instances(self._work, presence_space))
        give_back = S.to_release(self._held, share)
        if give_back:
            store.unlock_shards(self._work, shard_space, give_back)
            self._held.difference_update(give_back)
        candidates = S.to_try(self._held, OUTBOX_SHARDS, share, self._start)
        taken = store.try_lock_shards(self._work, shard_space, candidates, share - len(self._held))
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

    def _producer_now(self) -> DeliveryProducer:
        if self._producer is not None and self._producer.fatal_error:
            logger.error("%s: producer failed fatally (%s); starting a new one", self.name, self._producer.fatal_error)
            self._producer.close(1)
            self._producer = None
        if self._producer is None:
            self._producer = DeliveryProducer(
                self._bootstrap, message_timeout=self.settings.delivery_timeout, overrides=self._overrides
            )
        return self._producer

    def run_round(self) -> RoundResult:
        """Publish the owned shards' visible rows in batches until a claim comes back short.

        Pipelined: the next batch is claimed and handed to the producer while the broker is still
        acknowledging the previous one, so the database's and Kafka's round trips overlap. Batches
        are settled in order, each in its own transaction (dead letters stored, acknowledged rows
        removed); a key that failed in one batch counts as failed in the next (its acknowledged
        rows there stay and are sent again after the failed one). Stops early on a transient
        failure or after ``poll_interval`` seconds (so shards are balanced), and never returns with
        a batch in flight.
        """
        if not self._held:
            return RoundResult()
        assert self._work is not None
        shards = sorted(self._held)
        block = self.settings.block_key_on_dead_letter
        until = time.monotonic() + self.settings.poll_interval
        total = RoundResult()
        stopped: set[str] = set()
        flight: InFlight | None = None
        while True:
            started = time.monotonic()
            rows = store.claim(
                self._work,
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
                    break  # back off; a batch produced meanwhile is still settled below
            flight = following
            more = len(rows) == self.settings.batch_size and time.monotonic() < until
            if flight is None or not more:
                break
        if flight is not None:
            total = total.plus(self._settle(flight, stopped)[0])
        return total

    def _limits(self) -> Callable[[str], int | None]:
        if self._topic_limits is None:  # built on first use: a relay that never publishes asks nothing
            self._topic_limits = TopicLimits(self._bootstrap, self._overrides)
        return self._topic_limits

    def _send_batch(self, rows: Sequence[OutboxRow], stopped: set[str], started: float) -> InFlight:
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
            topic_limit=self._limits(),
        )

    def _settle(self, flight: InFlight, stopped: set[str]) -> tuple[RoundResult, set[str]]:
        """Wait for ``flight``'s acks; store its dead letters and remove its settled rows in one transaction."""
        assert self._work is not None and self._producer is not None
        block = self.settings.block_key_on_dead_letter
        timeout = self.settings.delivery_timeout
        sent = finish_publish(flight, producer=self._producer, timeout=timeout, block_key=block)
        plan = plan_round([(s.row.aggregateid, s, s.outcome) for s in sent], block_key=block, stopped=stopped)
        with self._work.transaction():
            store.insert_dead_letters(self._work, [self._dead_letter(s) for s in plan.dead_letter])  # savepoints
            store.finish(
                self._work, [s.row.id for s in plan.remove + plan.dead_letter], delete=self.settings.delete_published
            )
        if self.metrics is not None:
            self._record(plan.remove, plan.dead_letter, time.monotonic() - flight.started)
        # Rows only held behind an earlier row of their key (no error of their own) are not failures.
        failed = [s for s in sent if s.outcome is Outcome.TRANSIENT and s.error is not None]
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

    def _record(self, published: Sequence[Sent], dead: Sequence[Sent], seconds: float) -> None:
        """Count what a round published (after its transaction committed) and how long it took."""
        assert self.metrics is not None
        now = datetime.now(UTC)
        self.metrics.relay_publish_seconds.observe(seconds)
        for topic, count in Counter(item.topic for item in published).items():
            self.metrics.relay_published.labels(topic).inc(count)
        age = self.metrics.relay_event_age_seconds
        for item in published:
            if item.row.occurred_at is not None:  # always set on a published row (to_message requires it)
                age.observe(max(0.0, (now - item.row.occurred_at).total_seconds()))
        for item in dead:
            error = type(item.error).__name__ if item.error is not None else "-"
            self.metrics.publisher_dead_letters.labels(PublishSource.OUTBOX.value, error).inc()

    def _dead_letter(self, item: Sent) -> store.DeadLetter:
        """The publisher dead letter of a rejected row, built without decoding anything of the row."""
        assert item.error is not None
        logger.error(
            "%s (type %s) rejected, stored as a publisher dead letter: %s",
            describe(item.row, item.topic),
            short(item.row.type),
            short(item.error, 500),
        )
        raw = encode_headers(item.message.headers) if item.message is not None else None
        return store.DeadLetter(item.row.id, outbox_params(item.row.id, topic=item.topic, error=item.error), raw)

    def _maybe_cleanup(self) -> None:
        if self.settings.delete_published or self._work is None:
            return
        now = time.monotonic()
        if now - self._last_cleanup >= 60:
            self._last_cleanup = now
            store.cleanup_published(self._work, self.settings.published_retention)

    def _wait_for_work(self, stop: threading.Event) -> None:
        """Sleep until a NOTIFY arrives on the outbox channel, the poll interval passes, or ``stop``."""
        assert self._listen is not None
        deadline = time.monotonic() + self.settings.poll_interval
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in self._listen.notifies(timeout=min(left, 0.5), stop_after=1):
                return
