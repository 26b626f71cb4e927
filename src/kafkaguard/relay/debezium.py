"""Debezium as an alternative relay: the connector configuration kafkaguard generates, and a slot check.

The generated configuration makes Debezium's Outbox Event Router produce exactly what
kafkaguard's relay produces: key = ``aggregateid``, value = the ``payload`` JSON (expanded),
headers ``event_id``, ``type``, ``aggregate_type``, ``occurred_at``, ``schema_version``, topic
``outbox.event.<aggregatetype>``. Consumers cannot tell the relays apart.

Known differences (documented, not hidden):
- the row's ``headers`` JSON and its ``topic`` override are not carried (Debezium routes by
  ``aggregatetype`` only); the trace context is, from the ``traceparent`` column the publisher fills;
- Connect's dead-letter topic settings (``errors.deadletterqueue.*``) apply to sink connectors
  only; for this source connector a record that fails conversion is either dropped and logged
  (``errors.tolerance=all``) or stops the task (``none``, the default here, because dropping is
  loss). Retries with backoff (``errors.retry.*``) apply either way.
- outbox rows are not removed by Debezium: use insert-then-delete (the row is captured from the
  WAL, then deleted in the same transaction) or kafkaguard's cleanup.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import make_url

from kafkaguard import headers as H
from kafkaguard.connect_security import database_ssl
from kafkaguard.errors import ConfigurationError
from kafkaguard.topics import DEFAULT_TOPIC_PATTERN


@dataclass(frozen=True)
class DebeziumOptions:
    """What the connector configuration depends on."""

    database_url: str
    schema: str = "public"
    topic_pattern: str = DEFAULT_TOPIC_PATTERN
    name: str | None = None
    errors_tolerance: str = "none"
    retry_timeout_ms: int = 300_000
    retry_delay_max_ms: int = 60_000
    heartbeat_interval_ms: int = 10_000
    partitions: int = 3
    replication: int = 1

    @property
    def slot(self) -> str:
        """Replication slot name (lowercase, digits and underscores only)."""
        return "kafkaguard_" + re.sub(r"[^a-z0-9_]", "_", self.schema.lower())

    @property
    def connector_name(self) -> str:
        return self.name or f"kafkaguard-outbox-{self.schema}"


def connector_config(opts: DebeziumOptions, *, password_reference: str | None = None) -> dict[str, Any]:
    """The connector's name and configuration, for Connect's REST API or standalone's JSON file.

    ``password_reference``: the value of ``database.password`` in place of the URL's password, a
    Connect config-provider reference such as ``${file:/path/db.properties:password}`` or Strimzi's
    ``${secrets:namespace/secret:key}``, which the worker resolves when it starts the task; the
    URL's password is then not in the configuration at all. Without it the password is inline.
    """
    if opts.errors_tolerance not in ("none", "all"):
        raise ConfigurationError("errors_tolerance must be 'none' or 'all'")
    if "{aggregate_type}" not in opts.topic_pattern:
        raise ConfigurationError("the topic pattern must contain {aggregate_type}")
    url = make_url(opts.database_url)
    placement = ",".join(
        [
            f"id:header:{H.EVENT_ID}",
            f"type:header:{H.TYPE}",
            f"aggregatetype:header:{H.AGGREGATE_TYPE}",
            f"occurred_at:header:{H.OCCURRED_AT}",
            f"schema_version:header:{H.SCHEMA_VERSION}",
            f"traceparent:header:{H.TRACEPARENT}",  # the trace context (migration 0005); no value without one
        ]
    )
    config: dict[str, Any] = {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": url.host or "127.0.0.1",
        "database.port": str(url.port or 5432),
        "database.user": url.username or "",
        "database.password": (url.password or "") if password_reference is None else password_reference,
        "database.dbname": url.database or "",
        "topic.prefix": f"kafkaguard_{opts.slot}",
        "schema.include.list": opts.schema,
        "table.include.list": f"{opts.schema}.outbox",
        "publication.name": f"{opts.slot}_outbox",
        "publication.autocreate.mode": "filtered",
        "slot.name": opts.slot,
        # Existing rows are the kafkaguard relay's business; Debezium relays what commits from now on.
        "snapshot.mode": "no_data",
        "tombstones.on.delete": "false",
        "extended.headers.enabled": "false",  # no __debezium.context.* headers: same headers as our relay
        "heartbeat.interval.ms": str(opts.heartbeat_interval_ms),
        "transforms": "outbox",
        "transforms.outbox.type": "io.debezium.transforms.outbox.EventRouter",
        "transforms.outbox.table.field.event.id": "id",
        "transforms.outbox.table.field.event.key": "aggregateid",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.route.by.field": "aggregatetype",
        "transforms.outbox.route.topic.replacement": opts.topic_pattern.replace("{aggregate_type}", "${routedByValue}"),
        "transforms.outbox.table.expand.json.payload": "true",
        "transforms.outbox.table.fields.additional.placement": placement,
        # Connect creates the routed topics (and the heartbeat topic) like kafkaguard's relay would.
        "topic.creation.default.partitions": str(opts.partitions),
        "topic.creation.default.replication.factor": str(opts.replication),
        # The order note's error settings.
        "errors.tolerance": opts.errors_tolerance,
        "errors.log.enable": "true",
        "errors.log.include.messages": "true",
        "errors.retry.timeout": str(opts.retry_timeout_ms),
        "errors.retry.delay.max.ms": str(opts.retry_delay_max_ms),
    }
    config.update(database_ssl(opts.database_url))  # sslmode, sslrootcert, sslcert, sslkey of the libpq URL
    return {"name": opts.connector_name, "config": config}


SLOT_LAG_SQL = """
SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint AS retained_bytes
FROM pg_replication_slots WHERE slot_name = %(slot)s
"""
"""How much WAL a slot holds back (psycopg form)."""


@dataclass(frozen=True)
class SlotStatus:
    slot: str
    exists: bool
    active: bool
    retained_bytes: int

    def warning(self, limit_bytes: int) -> str | None:
        """A warning when the slot holds back more than ``limit_bytes`` of WAL, else None."""
        if not self.exists or self.retained_bytes <= limit_bytes:
            return None
        state = "inactive (connector stopped?)" if not self.active else "active but lagging"
        return (
            f"replication slot {self.slot} is {state} and retains {self.retained_bytes / 1e6:.1f} MB of WAL; "
            f"start the connector again, or drop the slot with SELECT pg_drop_replication_slot('{self.slot}') "
            "if Debezium is no longer the relay (the kafkaguard relay then publishes the outbox)"
        )
