"""Size limits of a relayed record: the producer's and the topic's, and the "barrier" rule built on them.

Why the relay cares: a broker that rejects a record as too large does so per produce request, so
a later record of the same key, sent in another request, can be acknowledged while the first is
refused — the key's order on Kafka is then broken before the relay knows. A record that librdkafka
itself finds too large (above the producer's ``message.max.bytes``) fails inside ``produce()`` and
is handled there (:meth:`~kafkaguard.transports.kafka_delivery.DeliveryProducer.produce_all`); a
record the *broker* may refuse is one close to or above the topic's ``max.message.bytes``.

Rule (:func:`barrier_bytes`): a record of at least 90 % of the smaller of the two limits is a
*barrier*: the relay produces it, and no later row of its key until its delivery report settled it
(in its round and in the pipelined next one). 90 %, not 100 %: the broker counts the record batch
(headers, varints, batch header; compression may help or not) and the relay only estimates the
record's size from its parts. Records this large are rare, so holding their keys costs nothing
measurable; the common record is compared with one integer.

Not covered: a topic whose ``max.message.bytes`` is below librdkafka's ``batch.size`` can refuse a
*batch* of small records; the relay retries each alone, but a later batch of the key may have been
acknowledged in between. Keep ``batch.size`` (default 1,000,000) at most the smallest topic limit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from kafkaguard.logtext import short
from kafkaguard.transports.kafka_topics import _admin_config

logger = logging.getLogger(__name__)

BARRIER_FRACTION = 0.9
"""A record of at least this share of the smallest size limit is a barrier for its key."""


def barrier_bytes(producer_limit: int, topic_limit: int | None) -> int:
    """The approximate record size from which a record holds back the later rows of its key."""
    limit = producer_limit if topic_limit is None else min(producer_limit, topic_limit)
    return int(limit * BARRIER_FRACTION)


class TopicLimits:
    """``max.message.bytes`` of topics, asked once per topic (DescribeConfigs) and remembered.

    ``timeout`` (s, default 5): the longest one lookup waits. ``retry_after`` (s, default 60): a
    topic whose limit could not be read (Kafka down, no DescribeConfigs permission) is asked again
    only after this long; meanwhile its limit is unknown and only the producer's limit counts.
    Thread-safe.
    """

    def __init__(
        self,
        bootstrap: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        timeout: float = 5.0,
        retry_after: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self.retry_after = retry_after
        self._admin = AdminClient(_admin_config(bootstrap, overrides))
        self._known: dict[str, int] = {}
        self._unknown_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, topic: str) -> int | None:
        """The topic's ``max.message.bytes``, or None while it cannot be learned."""
        with self._lock:
            if topic in self._known:
                return self._known[topic]
            if self._unknown_until.get(topic, 0.0) > time.monotonic():
                return None
        limit = self._describe(topic)
        with self._lock:
            if limit is None:
                self._unknown_until[topic] = time.monotonic() + self.retry_after
            else:
                self._known[topic] = limit
        return limit

    def _describe(self, topic: str) -> int | None:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            future = self._admin.describe_configs([resource], request_timeout=self.timeout)[resource]
            entry = future.result(timeout=self.timeout + 1).get("max.message.bytes")
            return int(entry.value) if entry is not None and entry.value is not None else None
        except (KafkaException, TimeoutError, ValueError, TypeError) as exc:
            logger.info("max.message.bytes of topic %s unknown for now (%s)", short(topic), short(exc))
            return None
