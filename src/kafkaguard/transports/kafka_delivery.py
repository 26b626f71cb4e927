"""A confluent-kafka producer whose deliveries complete futures, for threads and asyncio alike.

One producer per process, shared: a daemon thread polls librdkafka, and each delivery report
completes the :class:`concurrent.futures.Future` returned by :meth:`DeliveryProducer.submit`. The
synchronous :meth:`~DeliveryProducer.send` waits on that future; :meth:`~DeliveryProducer.send_async`
awaits it through :func:`asyncio.wrap_future`, so an event loop is never blocked by librdkafka.
:meth:`~DeliveryProducer.produce_all` produces a whole batch and waits once for all of its reports
(the relay's path: one counter per batch, no Future per message). Within one ``produce_all`` call a
message whose key already failed to be handed over is not produced at all (:class:`KeyHeldError`):
librdkafka raises some rejections synchronously (``MSG_SIZE_TOO_LARGE`` above ``message.max.bytes``),
and producing the key's next message would let it overtake the refused one.

It is kafkaguard's only Kafka producer, the real implementation of :class:`~.ports.Producer`
(contract in :mod:`.ports`, tested against the in-memory fake by ``tests/contract``).

Guarantees: settings are kafkaguard's idempotent ``acks=all`` murmur2-partitioned ones
(:mod:`.kafka_config`); a future completes with :class:`Delivered` only after the broker's ack, else
with a kafkaguard :class:`~kafkaguard.errors.PublishError` (transient or rejected, one table:
:mod:`.kafka_errors`). After :meth:`~DeliveryProducer.close` nothing is produced (KafkaUnavailableError
at once). Thread-safe. Producer settings are never logged (they may hold SASL passwords).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from kafkaguard.errors import (
    DeliveryTimeoutError,
    EventRejectedError,
    KafkaUnavailableError,
    KeyHeldError,
    PublishError,
)
from kafkaguard.transports.kafka_config import producer_config
from kafkaguard.transports.kafka_errors import translate_kafka_error
from kafkaguard.transports.kafka_logging import client_logging
from kafkaguard.transports.ports import Delivered, Headers, OutgoingMessage, PendingDeliveries, no_ack

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

logger = logging.getLogger(__name__)

LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000  # librdkafka's default message.max.bytes


class DeliveryProducer:
    """Produce messages; each ``submit`` returns a future completed by its delivery report.

    ``message_timeout`` (seconds, default 30): librdkafka's ``message.timeout.ms``, the longest a
    message waits for an ack (retries included) before its future fails with DeliveryTimeoutError.
    ``overrides``: raw librdkafka settings, applied last.
    """

    @classmethod
    def from_settings(cls, settings: KafkaguardSettings, *, message_timeout: float) -> DeliveryProducer:
        """The producer of the Kafka at ``settings.bootstrap_servers`` with the librdkafka overrides of
        ``settings.kafka_producer_overrides()`` (``kafka_security`` + ``producer``); ``message_timeout`` (s)
        is the caller's ack budget (each component has its own)."""
        return cls(
            settings.bootstrap_servers, message_timeout=message_timeout, overrides=settings.kafka_producer_overrides()
        )

    def __init__(
        self, bootstrap: str, *, message_timeout: float = 30.0, overrides: Mapping[str, Any] | None = None
    ) -> None:
        self.message_timeout = message_timeout
        self.fatal_error: str | None = None
        config = producer_config(
            bootstrap,
            overrides,
            **{
                "message.timeout.ms": int(message_timeout * 1000),
                "request.timeout.ms": max(1000, min(int(message_timeout * 1000), 30_000)),
                # Through Python logging, rate-limited (not stderr: outages are expected).
                **client_logging(bootstrap, "producer", on_error=self._on_error, config=overrides)[1],
            },
        )
        self.max_message_bytes = int(config.get("message.max.bytes", LIBRDKAFKA_MESSAGE_MAX_BYTES))
        """The largest message librdkafka accepts (``message.max.bytes``); larger ones fail in produce()."""
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafkaguard-producer-poll", daemon=True)
        self._thread.start()

    def _on_error(self, error: KafkaError) -> None:
        # Broker-down noise (ALL_BROKERS_DOWN, transport) is expected during outages: debug only.
        if error.fatal():
            self.fatal_error = f"{error.name()}: {error.str()}"
            logger.error("kafka producer fatal error: %s", self.fatal_error)
        else:
            logger.debug("kafka producer error: %s: %s", error.name(), error.str())

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def _produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers,
        on_delivery: Callable[[KafkaError | None, Message], None],
        deadline: float,
    ) -> PublishError | None:
        """Hand one message to librdkafka; return why it could not be (then no report will come)."""
        if self._stop.is_set():
            return KafkaUnavailableError(f"the producer is closed; nothing was sent to {topic!r}")
        hdrs = headers if isinstance(headers, list) else list(headers)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, headers=hdrs, on_delivery=on_delivery)
                return None
            except BufferError:
                # The local queue is full (Kafka down for a while): wait for room, within the budget.
                if time.monotonic() > deadline:
                    return DeliveryTimeoutError(f"librdkafka's queue stayed full; nothing could be sent to {topic!r}")
                self._stop.wait(0.05)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError):
                    return translate_kafka_error(err, topic)
                return PublishError(f"producing to {topic!r} failed: {exc}")
            except (TypeError, ValueError) as exc:
                # confluent-kafka refuses the arguments themselves (e.g. a header it cannot convert):
                # the same message would be refused again, so it is a rejection, not an outage.
                return EventRejectedError(
                    f"confluent-kafka refused a message to {topic!r}: {exc}", reason=type(exc).__name__
                )

    def submit(
        self, topic: str, value: bytes | None, *, key: bytes | None = None, headers: Headers = ()
    ) -> concurrent.futures.Future[Delivered]:
        """Hand one message to librdkafka; the future completes with its delivery report."""
        future: concurrent.futures.Future[Delivered] = concurrent.futures.Future()

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                future.set_exception(translate_kafka_error(err, topic))
            else:
                future.set_result(Delivered(str(msg.topic()), int(msg.partition() or 0), int(msg.offset() or 0)))

        error = self._produce(topic, value, key, headers, on_delivery, time.monotonic() + self.message_timeout)
        if error is not None:
            future.set_exception(error)
        return future

    def produce_all(self, messages: Sequence[OutgoingMessage], timeout: float) -> PendingDeliveries:
        """Hand ``messages`` to librdkafka in order without waiting; ``wait()`` on the result for the reports.

        ``timeout`` (s) bounds both the wait for room in librdkafka's queue and, from now, the wait
        for the last delivery report.

        Per-key order: once a message of key K could not be handed to librdkafka, the later
        messages of K in ``messages`` are not produced; they are settled at once with
        :class:`KeyHeldError` (nothing was sent: the caller sends them again later, after K's
        failed message). Messages without a key are never held. ``PendingDeliveries.refused``
        lists the indexes settled this way or by a failure of their own, before this call returned.
        """
        pending = PendingDeliveries([m[0] for m in messages], timeout)
        failed_keys: set[bytes] = set()
        produce = self._producer.produce
        stopped = self._stop.is_set
        for index, (topic, value, key, headers) in enumerate(messages):
            if failed_keys and key in failed_keys:
                pending.refuse(index, KeyHeldError(f"not produced to {topic!r}: an earlier message of its key failed"))
                continue
            on_delivery = partial(_reported, pending, index, topic)
            # The common case inline (this runs once per relayed row); anything unusual (closed,
            # queue full, a refusal, headers not a list) goes through _produce, which handles it.
            if isinstance(headers, list) and not stopped():
                try:
                    produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                    continue
                except (BufferError, KafkaException, TypeError, ValueError):
                    pass  # nothing was handed over: _produce tries again and classifies the failure
            error = self._produce(topic, value, key, headers, on_delivery, pending.deadline)
            if error is not None:
                pending.refuse(index, error)
                if key is not None:
                    failed_keys.add(key)
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
        """Produce and block until the broker's ack (at most ``timeout`` s, default message_timeout)."""
        future = self.submit(topic, value, key=key, headers=headers)
        budget = self.message_timeout if timeout is None else timeout
        try:
            return future.result(timeout=budget + 0.5)
        except concurrent.futures.TimeoutError as exc:
            raise no_ack(topic, budget) from exc

    async def send_async(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers = (),
        timeout: float | None = None,
    ) -> Delivered:
        """Produce and await the broker's ack without blocking the event loop."""
        future = self.submit(topic, value, key=key, headers=headers)
        budget = self.message_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), budget + 0.5)
        except TimeoutError as exc:
            raise no_ack(topic, budget) from exc

    def close(self, timeout: float = 10.0) -> None:
        """Wait up to ``timeout`` s for outstanding deliveries, then stop the poll thread."""
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(timeout=5)


def _reported(pending: PendingDeliveries, index: int, topic: str, err: KafkaError | None, _msg: Message) -> None:
    """librdkafka's delivery callback for message ``index`` of a ``produce_all`` call."""
    if err is None:
        pending.acked(index)  # the common case: one call less per message on the poll thread
    else:
        pending.settle(index, translate_kafka_error(err, topic))
