"""confluent-kafka adapter of :class:`~kafkaguard.consumer.source.MessageSource`.

Settings come from :func:`~kafkaguard.transports.kafka_config.consumer_config`: no auto-commit,
no auto offset store, ``read_committed``, ``earliest`` for a new group. Offsets are committed only
through :meth:`KafkaSource.commit`, synchronously. librdkafka errors become
:class:`~kafkaguard.errors.ConsumerError` here.

Thread-safety: use from one thread (the worker's); callbacks run inside ``poll``/``close``.
"""

from __future__ import annotations

import gc
import logging
import operator
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTP

from kafkaguard.consumer.assignment_wait import AssignmentWait
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.settings import GroupProtocol
from kafkaguard.consumer.source import RevokeCallback, TopicPartition
from kafkaguard.errors import ConfigurationError, ConsumerError
from kafkaguard.transports.kafka_config import consumer_config
from kafkaguard.transports.kafka_errors import READ_AUTHORIZATION_CODES, principal_hint, read_refusal
from kafkaguard.transports.kafka_logging import client_logging

log = logging.getLogger("kafkaguard.consumer.kafka")


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


_read_headers = operator.methodcaller("headers")
"""``msg.headers()`` called through the C API, which always checks for an error left set (see :func:`_headers`)."""


def _headers(msg: Message) -> tuple[list[tuple[str, bytes | None]], str | None]:
    """The message's headers, or none and why they could not be read.

    confluent-kafka (2.16) decodes header *names* as UTF-8 inside ``Message.headers()``; for other
    bytes it leaves a NULL in that header's tuple and returns the list with the error still set.
    A call from C (:data:`_read_headers`) turns that into ``SystemError``; a plain ``msg.headers()``
    does not once CPython 3.11 has specialised the call site, and touching the broken tuple then
    crashes the process. The tuples are also checked for empty slots (``gc.get_referents`` skips
    NULLs) before anything reads them. The names' bytes
    are out of reach from Python: the record keeps its key and value and says why it has no headers.
    """
    try:
        raw = _read_headers(msg)
    except Exception as exc:  # noqa: BLE001 - whatever the client raises, the record must still be kept
        cause = exc.__cause__ or exc.__context__ or exc
        return [], f"the Kafka client could not read the headers ({type(cause).__name__}: {cause})"
    if not raw:
        return [], None
    pairs = list(raw)
    if len(gc.get_referents(*pairs)) != 2 * len(pairs):
        return [], "the Kafka client could not read the headers (a header name is not UTF-8)"
    return [(str(h[0]), _as_bytes(h[1])) for h in pairs], None


def _timestamp(msg: Message) -> datetime | None:
    try:
        ts_type, ts_ms = msg.timestamp()
        return datetime.fromtimestamp(ts_ms / 1000, UTC) if ts_type and ts_ms and ts_ms > 0 else None
    except (OverflowError, OSError, ValueError):  # a timestamp set by a producer can be anything
        return None


def to_record(msg: Message) -> Record:
    """A confluent ``Message`` as a :class:`Record` (headers and bytes verbatim); never raises for
    what the message contains (see :func:`_headers`)."""
    headers, read_error = _headers(msg)
    # The frozen dataclass without its generated __init__ (one object.__setattr__ per field): the
    # same object, built once per message on the poll path; every field is given here.
    record: Record = object.__new__(Record)
    record.__dict__.update(
        topic=str(msg.topic()),
        partition=int(msg.partition() or 0),
        offset=int(msg.offset() or 0),
        key=_as_bytes(msg.key()),
        value=_as_bytes(msg.value()),
        headers=headers,
        timestamp=_timestamp(msg),
        read_error=read_error,
    )
    return record


def _log_commit(err: KafkaError | None, partitions: list[KafkaTP]) -> None:
    """Outcome of an asynchronous commit (served from ``poll``): a failure only means redelivery."""
    failed = [f"{tp.topic}[{tp.partition}]" for tp in partitions or [] if tp.error is not None]
    if err is not None or failed:
        log.warning("offset commit failed (%s %s); the next commit or a redelivery covers it", err, failed)


CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy", "group.protocol.type")
"""Settings librdkafka refuses under ``group.protocol=consumer`` (the broker owns them there)."""


def protocol_config(protocol: GroupProtocol, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``group.protocol`` setting for ``protocol``; ConfigurationError when ``overrides`` contradict it.

    An override of ``group.protocol`` itself must agree with ``protocol`` (else the callbacks would
    assume the wrong rebalance style); under ``consumer`` the :data:`CLASSIC_ONLY` settings are refused
    here, by name, rather than by librdkafka at construction with a generic message.
    """
    given = dict(overrides or {})
    if "group.protocol" in given and str(given["group.protocol"]).lower() != protocol.value:
        raise ConfigurationError(
            f"consumer_client sets group.protocol={given['group.protocol']} but consumer.group_protocol is "
            f"{protocol.value}: set consumer.group_protocol (KAFKAGUARD_CONSUMER__GROUP_PROTOCOL) only"
        )
    if protocol is GroupProtocol.CONSUMER:
        clashing = [k for k in CLASSIC_ONLY if k in given]
        if clashing:
            raise ConfigurationError(
                f"consumer_client sets {', '.join(clashing)}, which the consumer group protocol (KIP-848) does "
                "not accept: the broker decides these (group.consumer.session.timeout.ms, "
                "group.consumer.heartbeat.interval.ms, group.consumer.assignors); remove them or use "
                "consumer.group_protocol=classic"
            )
        return {"group.protocol": "consumer"}
    return {}


class KafkaSource:
    """A subscribed consumer of ``topics`` in ``group_id``; pause state survives rebalances.

    ``instance_id``: ``group.instance.id`` (static membership; default none, see
    :attr:`~kafkaguard.consumer.settings.ConsumerSettings.instance_id`). While it has no partitions
    it says so, and why, every few seconds (:mod:`.assignment_wait`); Kafka refusing its
    credentials before the first assignment raises :class:`~kafkaguard.errors.AuthenticationError`
    from :meth:`poll` (later, as after a credential rotation, it is logged and retried like an outage).

    ``group_protocol``: ``classic`` (eager: each rebalance revokes and reassigns the whole set) or
    ``consumer`` (KIP-848: incremental, only the partitions that move). In both, the revoke hook
    (:meth:`set_on_revoke`) gets exactly the partitions this consumer loses, before they move, and
    :meth:`owned` is the set it holds after the last callback.
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        *,
        overrides: Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        group_protocol: GroupProtocol = GroupProtocol.CLASSIC,
    ) -> None:
        self.group_id = group_id
        protocol = protocol_config(GroupProtocol(group_protocol), overrides)
        # librdkafka's lines through logging, rate-limited; a refused login is fatal (see poll).
        self._client_log, logging_settings = client_logging(
            bootstrap, f"consumer of group {group_id}", config=overrides
        )
        static = {"group.instance.id": instance_id} if instance_id else {}
        config = consumer_config(
            bootstrap, group_id, overrides, on_commit=_log_commit, **logging_settings, **static, **protocol
        )
        self._wait = AssignmentWait(
            group_id,
            static=bool(config.get("group.instance.id")),
            # Both default to 45 s; under the consumer protocol the broker's setting is the one that counts.
            session_timeout_ms=int(config.get("session.timeout.ms", 45_000)),
            session_setting="group.consumer.session.timeout.ms (broker)" if protocol else "session.timeout.ms",
        )
        self._ever_assigned = False
        # The consumer protocol, and classic with a cooperative assignor (a consumer_client override),
        # hand over deltas; confluent-kafka has no rebalance_protocol() to ask at callback time.
        self._incremental = bool(protocol) or "cooperative" in str(config.get("partition.assignment.strategy", ""))
        # What the rebalance callbacks last gave it: readable from any thread, unlike the consumer.
        self._owned: tuple[TopicPartition, ...] = ()
        self._topics = tuple(topics)
        self._principal = principal_hint(config)
        self._consumer = Consumer(config)
        self._on_revoke: RevokeCallback | None = None
        self._paused = False
        self._consumer.subscribe(list(topics), on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost)

    def _assigned(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        log.info("assigned group=%s %s", self.group_id, [(p.topic, p.partition) for p in partitions])
        self._ever_assigned = True
        new = tuple((p.topic, p.partition) for p in partitions)
        if self._incremental:
            consumer.incremental_assign(partitions)
            self._owned = self._owned + tuple(tp for tp in new if tp not in self._owned)
        else:
            consumer.assign(partitions)
            self._owned = new  # eager: the whole set
        if self._paused and partitions:
            consumer.pause(partitions)  # still paused for an outage: new partitions wait too
        waited = self._wait.assigned(len(self._owned))
        if waited is not None:
            log.info("%s", waited)

    def _revoked(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        log.info("revoked group=%s %s", self.group_id, [(p.topic, p.partition) for p in partitions])
        gone = [(p.topic, p.partition) for p in partitions]
        # Before they move: the worker commits what it applied from exactly these partitions.
        if self._on_revoke is not None:
            self._on_revoke(gone)
        if self._incremental:
            if partitions:
                consumer.incremental_unassign(partitions)
            self._owned = tuple(tp for tp in self._owned if tp not in set(gone))
        else:
            consumer.unassign()
            self._owned = ()
        if not self._owned:
            self._wait.waiting()

    def _lost(self, consumer: Consumer, partitions: list[KafkaTP]) -> None:
        # Lost, not revoked: another member may own them already, so a commit would be refused.
        log.warning("partitions lost group=%s %s", self.group_id, [(p.topic, p.partition) for p in partitions])
        self._revoked(consumer, partitions)

    def set_on_revoke(self, callback: RevokeCallback) -> None:
        self._on_revoke = callback

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        try:
            # Return as soon as anything is there: take what is already fetched, else wait up to
            # ``timeout`` for one message and add whatever arrived with it. consume(n, timeout)
            # alone waits until n messages or the timeout, which held a lightly loaded batch-mode
            # consumer back by up to ``timeout`` per batch (p50 commit→applied 0.4 s at 200 events/s).
            msgs = self._consumer.consume(num_messages=max_records, timeout=0)
            if not msgs:
                msgs = self._consumer.consume(num_messages=1, timeout=timeout)
                if msgs and max_records > 1:
                    msgs += self._consumer.consume(num_messages=max_records - 1, timeout=0)
        except KafkaException as exc:
            raise ConsumerError(f"reading from Kafka failed: {exc}") from exc
        if not self._ever_assigned:  # at start a wrong password is not an outage: stop, do not wait
            self._client_log.raise_if_refused()
        if not msgs and self._client_log.unreachable_now() is None:  # unreachable: that line says it
            waiting = self._wait.check()
            if waiting is not None:
                log.warning("%s", waiting)
        out: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is None:
                out.append(to_record(m))
            elif err.code() in READ_AUTHORIZATION_CODES:
                # Waiting does not grant an ACL: stop before anything is applied or committed.
                raise ConsumerError(self._refused(err, m.topic()))
            elif err.fatal() or err.code() == KafkaError._FATAL:  # the message's copy has no fatal flag
                # The client is unusable from here on: polling on would stall without a word. Seen
                # with group.protocol=consumer and a group.instance.id: a member restarted after a
                # kill is refused (UNRELEASED_INSTANCE_ID) while the dead one's session lasts; the
                # process exits and its restart (by the supervisor) joins once the session has expired.
                raise ConsumerError(f"the Kafka consumer of group {self.group_id} stopped: {err.str()}")
            elif err.code() != KafkaError._PARTITION_EOF:
                # Transient client errors (broker down, rebalancing) are retried by librdkafka.
                log.warning("consumer error group=%s: %s", self.group_id, err.str())
        return out

    def _refused(self, err: KafkaError, topic: str | None) -> str:
        return read_refusal(
            err, group=self.group_id, topics=(topic,) if topic else self._topics, principal=self._principal
        )

    def commit(self, offsets: Mapping[TopicPartition, int], *, wait: bool = True) -> None:
        """Commit ``offsets``. ``wait=False`` (the steady state) does not block: a synchronous commit
        has no timeout in librdkafka and hangs while the group coordinator is unreachable (a paused
        broker); its outcome is logged from ``poll``. Revocation and shutdown commit with ``wait``."""
        if not offsets:
            return
        tps = [KafkaTP(t, p, o) for (t, p), o in offsets.items()]
        try:
            if not wait:
                self._consumer.commit(offsets=tps, asynchronous=True)
                return
            result = self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() in READ_AUTHORIZATION_CODES:
                raise ConsumerError(self._refused(err, None)) from None
            raise ConsumerError(f"committing offsets failed: {exc}") from exc
        for tp in result or []:
            if tp.error is not None:
                raise ConsumerError(f"committing {tp.topic}[{tp.partition}] failed: {tp.error}")

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between this consumer's position and the high watermark, per assigned partition.

        Uses the watermarks librdkafka cached from fetch responses: no request to the broker.
        """
        out: dict[TopicPartition, int] = {}
        try:
            for tp in self._consumer.position(self._consumer.assignment()):
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if tp.offset >= 0 and high >= 0:
                    out[(tp.topic, tp.partition)] = max(0, high - tp.offset)
        except KafkaException as exc:
            log.debug("lag unavailable: %s", exc)
        return out

    def seek(self, positions: Mapping[TopicPartition, int]) -> None:
        for (t, p), o in positions.items():
            try:
                self._consumer.seek(KafkaTP(t, p, o))
            except KafkaException as exc:
                # Not assigned any more: its new owner starts from the committed offset, which is safe.
                log.info("seek %s[%d]@%d skipped: %s", t, p, o, exc)

    def pause(self) -> None:
        self._paused = True
        self._consumer.pause(self._consumer.assignment())

    def resume(self) -> None:
        self._paused = False
        self._consumer.resume(self._consumer.assignment())

    def assignment(self) -> list[TopicPartition]:
        """The partitions assigned now; call it from the polling thread only (see :meth:`owned`)."""
        return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def owned(self) -> tuple[TopicPartition, ...]:
        """The partitions this consumer holds after the last rebalance callback (eager: the set it
        was given; incremental: the additions minus the revoked or lost), safe to read from any thread.

        confluent-kafka's ``assignment()`` holds the GIL while it waits for librdkafka's group
        thread, which during a rebalance waits for the polling thread's Python callback: called
        from a second thread it deadlocks both.
        """
        return self._owned

    def close(self) -> None:
        try:
            self._consumer.close()
        except KafkaException as exc:
            raise ConsumerError(f"closing the consumer failed: {exc}") from exc
