"""Create topics on demand, idempotently."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkaguard.errors import PublishError
from kafkaguard.transports.kafka_topics import _admin_config


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    *,
    partitions: int = 3,
    replication: int = 1,
    timeout: float = 30.0,
    overrides: Mapping[str, Any] | None = None,
) -> None:
    """Create each missing topic with ``partitions`` and ``replication``; existing topics are left as they are.

    ``overrides``: client settings (e.g. ``settings.kafka_producer_overrides()``); only TLS/SASL ones are used.
    """
    admin = AdminClient(_admin_config(bootstrap, overrides))
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in topics]
    if not wanted:
        return
    futures = admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout)
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise PublishError(f"could not create topic {topic!r}: {exc}") from exc


def delete_topics(
    bootstrap: str, topics: Iterable[str], *, timeout: float = 30.0, overrides: Mapping[str, Any] | None = None
) -> None:
    """Delete ``topics``; topics that do not exist are ignored. ``overrides``: as for :func:`ensure_topics`."""
    names = list(topics)
    if not names:
        return
    admin = AdminClient(_admin_config(bootstrap, overrides))
    for future in admin.delete_topics(names, operation_timeout=timeout).values():
        with contextlib.suppress(KafkaException):  # already gone is fine
            future.result(timeout=timeout)
