"""Make sure a topic exists before producing to it: created with configured partitions and
replication when absent, remembered per process so the check costs one metadata call per topic.

Errors are kafkaguard's: :class:`~kafkaguard.errors.KafkaUnavailableError` when Kafka cannot be
asked now (retry later), :class:`~kafkaguard.errors.EventRejectedError` when the topic is not
authorised, invalid, or missing while creation is off (events for it belong in a dead-letter store).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkaguard.errors import EventRejectedError, KafkaUnavailableError
from kafkaguard.transports.kafka_errors import rejection_reason, rejects
from kafkaguard.transports.kafka_logging import client_logging

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

logger = logging.getLogger(__name__)

# Client settings that the admin client needs as much as the producer (TLS, SASL, the OAUTHBEARER
# token callback of kafka_security); nothing else is copied.
_SHARED_PREFIXES = ("security.", "sasl.", "ssl.", "client.id", "oauth_cb")


def _admin_config(bootstrap: str, overrides: Mapping[str, Any] | None, client: str = "admin client") -> dict[str, Any]:
    shared = {k: v for k, v in (overrides or {}).items() if k.startswith(_SHARED_PREFIXES)}
    return {"bootstrap.servers": bootstrap, **client_logging(bootstrap, client, config=shared)[1], **shared}


class TopicRegistry:
    """Ensure topics exist (the real :class:`~kafkaguard.transports.ports.Topics`); thread-safe; a topic
    found or created once is not asked about again."""

    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 3,
        replication: int = 1,
        create_missing: bool = True,
        timeout: float = 10.0,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.partitions = partitions
        self.replication = replication
        self.create_missing = create_missing
        self.timeout = timeout
        self._admin = AdminClient(_admin_config(bootstrap, overrides))
        self._known: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: KafkaguardSettings) -> TopicRegistry:
        """The registry of the Kafka at ``settings.bootstrap_servers``: topics created with
        ``settings.topics`` (partitions, replication, ``create_missing``), client security settings
        taken from ``settings.kafka_producer_overrides()``."""
        return cls(
            settings.bootstrap_servers,
            partitions=settings.topics.partitions,
            replication=settings.topics.replication,
            create_missing=settings.topics.create_missing,
            overrides=settings.kafka_producer_overrides(),
        )

    def ensure(self, topic: str, *, timeout: float | None = None) -> None:
        """Return once ``topic`` exists; raise KafkaUnavailableError or EventRejectedError otherwise."""
        with self._lock:
            if topic in self._known:
                return
        budget = self.timeout if timeout is None else timeout
        if not self._exists(topic, budget):
            if not self.create_missing:
                raise EventRejectedError(
                    f"topic {topic!r} does not exist and creating topics is turned off", reason="UNKNOWN_TOPIC_OR_PART"
                )
            self._create(topic, budget)
        with self._lock:
            self._known.add(topic)

    def _exists(self, topic: str, budget: float) -> bool:
        try:
            metadata = self._admin.list_topics(topic, timeout=budget)
        except KafkaException as exc:
            raise KafkaUnavailableError(f"could not read Kafka's metadata for {topic!r}: {exc}") from exc
        found = metadata.topics.get(topic)
        if found is None or found.error is None:
            return found is not None
        code = found.error.code()
        if rejects(found.error):
            raise EventRejectedError(
                f"{rejection_reason(found.error)}: topic {topic!r} is refused: {found.error.str()}",
                reason=rejection_reason(found.error),
            )
        if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
            return False
        raise KafkaUnavailableError(f"topic {topic!r} is not usable now: {found.error.str()}")

    def _create(self, topic: str, budget: float) -> None:
        new = NewTopic(topic, num_partitions=self.partitions, replication_factor=self.replication)
        future = self._admin.create_topics([new], operation_timeout=budget, request_timeout=budget)[topic]
        try:
            future.result(timeout=budget + 1)
        except concurrent.futures.TimeoutError as exc:
            raise KafkaUnavailableError(f"creating topic {topic!r} timed out after {budget:.0f} s") from exc
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            if isinstance(err, KafkaError) and rejects(err):
                reason = rejection_reason(err)
                raise EventRejectedError(
                    f"{reason}: topic {topic!r} cannot be created: {err.str()}", reason=reason
                ) from exc
            raise KafkaUnavailableError(f"could not create topic {topic!r} now: {exc}") from exc
        logger.info("created topic %s (partitions=%d, replication=%d)", topic, self.partitions, self.replication)
