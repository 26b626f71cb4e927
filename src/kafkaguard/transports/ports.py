"""The Kafka producer port: what kafkaguard's components need of a producer, and the values it speaks in.

Two implementations keep the same contract (``tests/contract/test_producer_contract.py``):
:class:`~kafkaguard.transports.kafka_delivery.DeliveryProducer` (confluent-kafka, the real one) and
:class:`~kafkaguard.testing.fakes.producer.MemoryProducer` (in memory, for tests). Components
(relay, publisher, restore, DLQ copier) take a :class:`Producer` through their constructor.

The contract, for both:

- a message counts as delivered only on the broker's ack: ``send`` returns :class:`Delivered`,
  a ``produce_all`` result holds ``None`` for it; anything else is a
  :class:`~kafkaguard.errors.PublishError`: :class:`~kafkaguard.errors.EventRejectedError` (refused
  for good, ``reason`` = Kafka's error name), :class:`~kafkaguard.errors.KafkaUnavailableError`
  (transient; :class:`~kafkaguard.errors.DeliveryTimeoutError` when no ack came in time);
- a message larger than ``max_message_bytes`` is refused inside the produce call, before anything
  is sent (``EventRejectedError``, reason ``MSG_SIZE_TOO_LARGE``);
- within one ``produce_all`` call, once a message of key K was refused, the later messages of K
  are not produced (:class:`~kafkaguard.errors.KeyHeldError`): they must not overtake it;
- a key always lands on the partition Java's client picks (murmur2, :mod:`.partitioner`);
- after ``close()`` nothing more is sent: produce calls fail at once with ``KafkaUnavailableError``.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from kafkaguard.errors import DeliveryTimeoutError, PublishError

Headers = Sequence[tuple[str, bytes]]
OutgoingMessage = tuple[str, bytes | None, bytes | None, Headers]  # topic, value, key, headers


@dataclass(frozen=True)
class Delivered:
    """Where the broker stored a message."""

    topic: str
    partition: int
    offset: int


def no_ack(topic: str, budget: float) -> DeliveryTimeoutError:
    """The error of a message whose ack did not come within ``budget`` seconds."""
    return DeliveryTimeoutError(
        f"the broker did not acknowledge a message to {topic!r} within {budget:.1f} s; "
        "Kafka is down or has too few in-sync replicas"
    )


_PENDING = object()


class PendingDeliveries:
    """The outcomes of one ``produce_all`` call, as they arrive.

    A producer settles each message once: :meth:`settle` on its delivery report, :meth:`refuse` when
    it was never produced. Reports may arrive on another thread than the producing one: the count
    of settled messages is an :func:`itertools.count` (``next()`` on it is atomic under the GIL, so
    each settle takes one C call instead of a lock round trip; exactly one settle sees the last
    number). ``refused``: indexes settled by :meth:`refuse`, in order; ``failures``: how many were
    settled with an error (0: every settled message was acknowledged).
    """

    def __init__(self, topics: Sequence[str], timeout: float) -> None:
        self.topics = topics
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.results: list[PublishError | object | None] = [_PENDING] * len(topics)
        self.refused: list[int] = []  # indexes that failed (or were held back) before being produced
        self.failures = 0
        self._done = threading.Event()
        self._last = len(topics) - 1
        self._settled = itertools.count()
        self._lock = threading.Lock()
        if not topics:
            self._done.set()

    def settle(self, index: int, error: PublishError | None) -> None:
        """Record message ``index``'s outcome (``None`` = acknowledged)."""
        self.results[index] = error
        if error is not None:
            with self._lock:
                self.failures += 1
        if next(self._settled) == self._last:
            self._done.set()

    def acked(self, index: int) -> None:
        """``settle(index, None)``, the delivery report of an acknowledged message, without its branches."""
        self.results[index] = None
        if next(self._settled) == self._last:
            self._done.set()

    def refuse(self, index: int, error: PublishError) -> None:
        """Message ``index`` was never produced: settle it with ``error`` and list it in ``refused``."""
        self.refused.append(index)
        self.settle(index, error)

    def wait(self) -> list[PublishError | None]:
        """Wait until every outcome came or the deadline passed; one entry per message: ``None`` once the
        broker acknowledged it, else its :class:`PublishError` (:class:`DeliveryTimeoutError` if none came)."""
        self._done.wait(max(0.0, self.deadline - time.monotonic()) + 0.5)
        return [
            no_ack(self.topics[i], self.timeout) if r is _PENDING else r  # type: ignore[misc]
            for i, r in enumerate(self.results)
        ]


class Producer(Protocol):
    """What kafkaguard's components need of a Kafka producer (the contract is in the module docstring).

    Implementations are thread-safe: one producer is shared by a process's components.
    """

    @property
    def max_message_bytes(self) -> int:
        """The largest message (key, value, headers and record overhead) a produce call accepts."""
        ...

    @property
    def fatal_error(self) -> str | None:
        """Why the producer can no longer deliver anything (then make a new one); None while it can."""
        ...

    def produce_all(self, messages: Sequence[OutgoingMessage], timeout: float) -> PendingDeliveries:
        """Hand ``messages`` over in order without waiting; ``timeout`` (s) bounds the wait for their acks."""
        ...

    def send(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        """Produce one message and block until its ack (at most ``timeout`` s, default: the producer's)."""
        ...

    async def send_async(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        """:meth:`send` without blocking the event loop."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` s for outstanding deliveries, then stop; later produce calls fail."""
        ...


class Topics(Protocol):
    """What components need of a topic registry (:class:`~kafkaguard.transports.kafka_topics.TopicRegistry`)."""

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        """Return once ``topic`` exists; raise KafkaUnavailableError (retry later) or EventRejectedError."""
        ...


class TopicsExist:
    """A :class:`Topics` that asks nothing: every topic is taken to exist (the producer reports if not).

    For a producer that knows its topics itself, e.g. the in-memory fake.
    """

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        """Return at once."""
