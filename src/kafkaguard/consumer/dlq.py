"""Copy dead letters to ``<topic>.dlq`` (``ConsumerSettings.dlq_topic``).

The PostgreSQL row is the durable record; the topic copy is for tools that watch Kafka. The copy
is produced after the row committed and before the offset is committed, with the original
position and the exception in headers (names in :mod:`kafkaguard.headers`). A failed copy is
logged, never retried forever: it must not stall the partition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kafkaguard import headers as H
from kafkaguard.consumer.records import Record
from kafkaguard.errors import PublishError
from kafkaguard.topics import dlq_topic
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from kafkaguard.transports.ports import Producer

log = logging.getLogger("kafkaguard.consumer.dlq")


def dlq_headers(record: Record, row: Mapping[str, Any]) -> list[tuple[str, bytes]]:
    """The original headers plus position, reason and exception (pure)."""
    extra = {
        H.DLQ_ORIGINAL_TOPIC: record.topic,
        H.DLQ_ORIGINAL_PARTITION: str(record.partition),
        H.DLQ_ORIGINAL_OFFSET: str(record.offset),
        H.DLQ_REASON: str(row.get("reason") or ""),
        H.DLQ_EXCEPTION_CLASS: str(row.get("error_class") or ""),
        H.DLQ_EXCEPTION_MESSAGE: str(row.get("error_message") or "")[:1000],
    }
    kept = [(k, v) for k, v in record.headers if v is not None and k not in extra]
    return kept + [(k, v.encode()) for k, v in extra.items()]


class DlqCopier:
    """Callable ``(record, row)`` that produces the copy and waits for the broker's ack.

    ``producer``: the producer port to copy with (e.g. ``kafkaguard.testing.MemoryProducer()``; the
    caller closes it). Without one, a :class:`~kafkaguard.transports.kafka_delivery.DeliveryProducer`
    of ``bootstrap`` and ``overrides`` is made, waiting up to ``timeout`` s (default 10) for each ack;
    :meth:`close` closes it.
    """

    def __init__(
        self,
        bootstrap: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        producer: Producer | None = None,
    ) -> None:
        if producer is None and bootstrap is None:
            raise TypeError("DlqCopier needs a producer or the bootstrap servers to make one")
        self._owned = producer is None
        self._producer: Producer = producer or DeliveryProducer(
            str(bootstrap), message_timeout=timeout, overrides=overrides
        )

    def __call__(self, record: Record, row: Mapping[str, Any]) -> None:
        try:
            self._producer.send(dlq_topic(record.topic), record.value, key=record.key, headers=dlq_headers(record, row))
        except PublishError as exc:
            log.error("DLQ copy failed for %s (the dead-letter row is stored): %s", record.where(), exc)

    def close(self) -> None:
        """Close the producer this copier made (one passed in stays open)."""
        if self._owned:
            self._producer.close()
