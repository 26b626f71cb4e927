"""A tiny in-memory producer for the relay's unit tests (``Relay(producer=...)``): every message is
acknowledged at once unless ``fail`` returns an error for it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kafkaguard.errors import PublishError
from kafkaguard.transports.kafka_delivery import Delivered, Headers, OutgoingMessage, PendingDeliveries

Failure = Callable[[str, bytes | None, bytes | None], PublishError | None]  # topic, key, value -> error


class FakeProducer:
    """Acknowledges in order; ``sent`` holds (topic, key, value) of every acknowledged message."""

    max_message_bytes = 1_000_000

    def __init__(self, fail: Failure | None = None, *, fail_in_batch: Failure | None = None) -> None:
        self.fail: Failure = fail or (lambda _t, _k, _v: None)
        # Only for produce_all (a broker refusing a whole request, not the record): send() succeeds.
        self.fail_in_batch: Failure = fail_in_batch or (lambda _t, _k, _v: None)
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.closed = False

    def produce_all(self, messages: Sequence[OutgoingMessage], timeout: float) -> PendingDeliveries:
        pending = PendingDeliveries([m[0] for m in messages], timeout)
        for index, (topic, value, key, _headers) in enumerate(messages):
            error = self.fail(topic, key, value) or self.fail_in_batch(topic, key, value)
            if error is None:
                self.sent.append((topic, key, value))
            pending.settle(index, error)
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
        error = self.fail(topic, key, value)
        if error is not None:
            raise error
        self.sent.append((topic, key, value))
        return Delivered(topic, 0, len(self.sent) - 1)

    def close(self, timeout: float = 10.0) -> None:
        self.closed = True

    def keys(self) -> list[bytes | None]:
        return [k for _t, k, _v in self.sent]


class NoTopics:
    """A topic registry where every topic exists."""

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        return None
