"""An in-memory Kafka producer: the producer port without a broker, for unit tests.

:class:`MemoryProducer` keeps the contract of :mod:`kafkaguard.transports.ports` exactly as the
real :class:`~kafkaguard.transports.kafka_delivery.DeliveryProducer` does (the same tests run against
both, ``tests/contract/test_producer_contract.py``):

- messages are stored per topic and partition with offsets from 0, in produce order; a key goes to
  the partition Java's client (and librdkafka's ``murmur2_random``) picks; keyless messages take the
  partitions in turn (the real producer picks one at random);
- a message above ``max_message_bytes`` (counted as librdkafka counts it) is refused inside the
  produce call: :class:`~kafkaguard.errors.EventRejectedError`, reason ``MSG_SIZE_TOO_LARGE``; in one
  ``produce_all`` call the later messages of its key are not produced
  (:class:`~kafkaguard.errors.KeyHeldError`);
- a topic it does not know (only with ``default_partitions=None``) fails as on a broker that does
  not create topics: :class:`~kafkaguard.errors.KafkaUnavailableError`, transient;
- faults are injected per topic or predicate: :meth:`MemoryProducer.reject` (the broker refuses the
  record), :meth:`MemoryProducer.time_out` (no ack in time); a faulted message is not stored
  (unless ``time_out(stored=True)``: Kafka's timeout means "unknown", the write may have happened);
- outcomes are settled at once: nothing waits, a timeout included.

Thread-safe: one lock guards the stored messages, offsets and faults.

Example::

    producer = MemoryProducer(partitions={"outbox.event.order": 3})
    producer.reject("outbox.event.order", where=lambda m: m.key == b"o-13", reason="POLICY_VIOLATION")
    publisher = Publisher(settings, producer=producer)
    ...
    assert [m.key for m in producer.messages("outbox.event.order")] == [b"o-12"]
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kafkaguard.errors import EventRejectedError, KafkaUnavailableError, KeyHeldError, PublishError
from kafkaguard.transports.partitioner import partition_for
from kafkaguard.transports.ports import Delivered, Headers, OutgoingMessage, PendingDeliveries, no_ack

DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``, the real producer's limit unless overridden."""

TOO_LARGE = "MSG_SIZE_TOO_LARGE"

# librdkafka's produce-time size of a record (rd_kafka_msg_max_wire_size): key, value and each
# header's name and value with their varint lengths, plus a fixed record overhead. The overhead and
# the varint rule were measured on confluent-kafka; the contract suite checks the exact boundary.
_RECORD_OVERHEAD = 36


def _varint_size(n: int) -> int:
    zigzag, size = n << 1, 1  # Kafka's varints are zigzag-encoded signed ints: 7 bits a byte
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def record_size(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The size librdkafka compares with ``message.max.bytes`` inside ``produce()``."""
    size = _RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, data in headers:
        raw = name.encode()
        size += _varint_size(len(raw)) + len(raw) + _varint_size(len(data or b"")) + len(data or b"")
    return size


@dataclass(frozen=True)
class StoredMessage:
    """A message as the fake broker holds it; ``offset`` is -1 for one that was not stored."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, or None."""
        return next((v for k, v in self.headers if k == name), None)


Match = Callable[[StoredMessage], bool]
"""A fault's predicate over a message about to be stored (its partition known, offset -1)."""


@dataclass
class _Fault:
    kind: Literal["reject", "timeout"]
    topic: str | None
    where: Match | None
    reason: str
    left: int | None  # how many more messages it hits; None: every matching one
    stored: bool

    def hits(self, message: StoredMessage) -> bool:
        if self.left == 0 or (self.topic is not None and message.topic != self.topic):
            return False
        return self.where is None or self.where(message)


class MemoryProducer:
    """The producer port in memory (guarantees in the module docstring).

    ``partitions``: topic → partition count. ``default_partitions`` (default 1): the count of any
    other topic, created on first produce; None makes other topics unknown. ``max_message_bytes``
    (default 1,000,000, as librdkafka): the size refused inside the produce call.
    ``message_timeout`` (s, default 30): only reported in timeout errors; nothing waits.
    """

    def __init__(
        self,
        *,
        partitions: Mapping[str, int] | None = None,
        default_partitions: int | None = 1,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        message_timeout: float = 30.0,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.message_timeout = message_timeout
        self.fatal_error: str | None = None
        """Set it to make the producer report a fatal error (a relay then replaces its producer)."""
        self.closed = False
        self._partitions = dict(partitions or {})
        self._default_partitions = default_partitions
        self._offsets: dict[tuple[str, int], int] = {}
        self._keyless_turn: dict[str, int] = {}
        self._stored: list[StoredMessage] = []
        self._produced: list[StoredMessage] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    # --- fault injection -------------------------------------------------------------------------

    def reject(
        self,
        topic: str | None = None,
        *,
        where: Match | None = None,
        reason: str = "INVALID_RECORD",
        times: int | None = None,
    ) -> None:
        """The broker refuses matching messages in their delivery report: EventRejectedError(``reason``).

        ``topic`` / ``where``: which messages (both None: all). ``times``: how many matching messages
        are refused before the fault wears off (None: all), e.g. ``times=1`` for a record refused in a
        batch and accepted when sent again alone.
        """
        self._add(_Fault("reject", topic, where, reason, times, stored=False))

    def time_out(
        self, topic: str | None = None, *, where: Match | None = None, times: int | None = None, stored: bool = False
    ) -> None:
        """Matching messages get no ack in time: DeliveryTimeoutError (transient). ``stored=True``: the
        broker wrote them anyway (so a retry makes a duplicate, as on a real timeout)."""
        self._add(_Fault("timeout", topic, where, "", times, stored))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def _add(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    # --- reading back ----------------------------------------------------------------------------

    def messages(self, topic: str | None = None) -> list[StoredMessage]:
        """The stored (acknowledged) messages of ``topic`` (None: all topics), in the order they were stored."""
        with self._lock:
            return [m for m in self._stored if topic is None or m.topic == topic]

    def produced(self, topic: str | None = None) -> list[StoredMessage]:
        """Every message the produce calls accepted (not refused inside them), whatever its delivery
        outcome, in order; a message that was not stored has offset -1."""
        with self._lock:
            return [m for m in self._produced if topic is None or m.topic == topic]

    # --- the port ---------------------------------------------------------------------------------

    def produce_all(self, messages: Sequence[OutgoingMessage], timeout: float) -> PendingDeliveries:
        """Produce ``messages`` in order; the result is settled before this returns."""
        pending = PendingDeliveries([m[0] for m in messages], timeout)
        failed_keys: set[bytes] = set()
        for index, (topic, value, key, headers) in enumerate(messages):
            if key is not None and key in failed_keys:
                pending.refuse(index, KeyHeldError(f"not produced to {topic!r}: an earlier message of its key failed"))
                continue
            refusal = self._refusal(topic, value, key, headers)
            if refusal is not None:
                pending.refuse(index, refusal)
                if key is not None:
                    failed_keys.add(key)
                continue
            outcome = self._deliver(topic, value, key, headers, timeout)
            pending.settle(index, outcome if isinstance(outcome, PublishError) else None)
        return pending

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        """Produce one message; return where it was stored or raise its PublishError."""
        refusal = self._refusal(topic, value, key, headers)
        if refusal is not None:
            raise refusal
        outcome = self._deliver(topic, value, key, headers, self.message_timeout if timeout is None else timeout)
        if isinstance(outcome, PublishError):
            raise outcome
        return outcome

    async def send_async(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        """:meth:`send` (it never blocks)."""
        return self.send(topic, value, key=key, headers=headers, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop producing: later produce calls fail with KafkaUnavailableError. Stored messages stay readable."""
        self.closed = True

    # --- inside -------------------------------------------------------------------------------------

    def _refusal(self, topic: str, value: bytes | None, key: bytes | None, headers: Headers) -> PublishError | None:
        """Why the produce call itself refuses the message (as librdkafka's ``produce()`` raises), or None."""
        if self.closed:
            return KafkaUnavailableError(f"the producer is closed; nothing was sent to {topic!r}")
        size = record_size(key, value, headers)
        if size > self.max_message_bytes:
            return EventRejectedError(
                f"Kafka refuses the record for {topic!r} ({TOO_LARGE}: {size} bytes is above "
                f"message.max.bytes {self.max_message_bytes}); retrying will not help",
                reason=TOO_LARGE,
            )
        return None

    def _deliver(
        self, topic: str, value: bytes | None, key: bytes | None, headers: Headers, timeout: float
    ) -> Delivered | PublishError:
        """Store the message or apply the first fault that hits it; return its delivery report."""
        with self._lock:
            count = self._partitions.get(topic, self._default_partitions)
            if count is None:
                return KafkaUnavailableError(
                    f"producing to {topic!r} failed for now (UNKNOWN_TOPIC_OR_PART: the topic does not exist); "
                    "it will be retried"
                )
            self._partitions.setdefault(topic, count)
            if key is None:
                turn = self._keyless_turn.get(topic, 0)
                self._keyless_turn[topic] = turn + 1
                partition = turn % count
            else:
                partition = partition_for(key, count)
            message = StoredMessage(topic, partition, -1, key, value, tuple(headers))
            fault = next((f for f in self._faults if f.hits(message)), None)
            if fault is not None and fault.left is not None:
                fault.left -= 1
            if fault is None or fault.stored:
                offset = self._offsets.get((topic, partition), 0)
                self._offsets[(topic, partition)] = offset + 1
                message = StoredMessage(topic, partition, offset, key, value, message.headers)
                self._stored.append(message)
            self._produced.append(message)
        if fault is None:
            return Delivered(topic, partition, message.offset)
        if fault.kind == "timeout":
            return no_ack(topic, timeout)
        return EventRejectedError(
            f"Kafka refuses the record for {topic!r} ({fault.reason}, injected by MemoryProducer); "
            "retrying will not help",
            reason=fault.reason,
        )
