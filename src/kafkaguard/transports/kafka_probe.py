"""Wait at start until Kafka answers, saying once per interval why it does not; a refused login is fatal.

A worker started against a wrong or down bootstrap address used to start "successfully" and then
flood the log. :func:`wait_for_kafka` asks for the cluster's metadata until it gets it: while the
brokers cannot be reached it logs one line per interval (address and reason, through
:mod:`.kafka_logging`); when they refuse the credentials (SASL) it raises
:class:`~kafkaguard.errors.AuthenticationError` at once, since waiting does not fix a password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from kafkaguard.transports.kafka_logging import LOG_INTERVAL, KafkaClientLog, is_refusal, security_of, short_reason
from kafkaguard.transports.kafka_topics import _SHARED_PREFIXES

log = logging.getLogger("kafkaguard.kafka")

ATTEMPT_TIMEOUT = 2.0
"""Seconds one metadata request may take."""


def wait_for_kafka(
    bootstrap: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    client: str = "worker",
    stop: threading.Event | None = None,
    interval: float = LOG_INTERVAL,
) -> int | None:
    """Return the number of brokers once Kafka at ``bootstrap`` answers; None if ``stop`` was set first.

    ``overrides``: the client settings of the worker; only TLS/SASL ones (``security.*``, ``sasl.*``,
    ``ssl.*``) are used, so the check authenticates like the worker will. ``client`` names the
    worker in the lines. Raises :class:`~kafkaguard.errors.AuthenticationError` when Kafka refuses
    the credentials.
    """
    shared = {k: v for k, v in (overrides or {}).items() if k.startswith(_SHARED_PREFIXES)}
    client_log = KafkaClientLog(bootstrap, client, interval=interval, security=security_of(shared))
    config: Any = {"bootstrap.servers": bootstrap, "logger": client_log, "error_cb": client_log.error, **shared}
    admin = AdminClient(config)
    while stop is None or not stop.is_set():
        try:
            metadata = admin.list_topics(timeout=ATTEMPT_TIMEOUT)
        except KafkaException as exc:
            admin.poll(0.2)  # serves the client's errors: the connect failure's reason, a refused login
            client_log.raise_if_refused()
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and is_refusal(err.code(), str(err.str())):
                client_log.error(err)
                client_log.raise_if_refused()
            client_log.report_unreachable(None if client_log.last_unreachable else short_reason(str(exc)))
            if stop is not None:
                stop.wait(0.5)
            continue
        admin.poll(0)
        client_log.raise_if_refused()
        return len(metadata.brokers)
    return None
