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

On MariaDB the source is Debezium's MariaDB connector reading the binlog (ROW format, full row
images) instead of a replication slot; the Outbox Event Router and the error settings are the same.
It keeps a schema-history topic in Kafka (``bootstrap`` is required), starts at the binlog's end
(``snapshot.mode=no_data``, no global read lock) and renders ``occurred_at`` (``DATETIME(6)``, UTC)
as an ISO 8601 header with milliseconds (``time.precision.mode=connect``), which the consumer reads
as it reads kafkaguard's own; the microseconds are dropped on that path.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import URL, make_url

from kafkaguard import headers as H
from kafkaguard.connect_security import database_ssl
from kafkaguard.db.engine import dialect_name
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
    bootstrap: str | None = None
    """Kafka bootstrap servers for the MariaDB connector's schema-history topic (unused on PostgreSQL)."""
    server_id: int | None = None
    """MariaDB: the replica id the connector uses on the binlog (unique among the server's replicas);
    by default one derived from the schema, in 100000..2^31."""
    history_client: tuple[tuple[str, str], ...] = ()
    """MariaDB on a secured cluster: the schema-history clients' Java properties, unprefixed, secrets
    as config-provider references (:func:`kafkaguard.connect_security.client_properties`); they are
    set under ``schema.history.internal.producer.`` and ``.consumer.``, which is where the connector
    reads them (the worker's own ``producer.*`` settings do not reach those clients)."""

    @property
    def slot(self) -> str:
        """Replication slot name (lowercase, digits and underscores only)."""
        return "kafkaguard_" + re.sub(r"[^a-z0-9_]", "_", self.schema.lower())

    @property
    def connector_name(self) -> str:
        return self.name or f"kafkaguard-outbox-{self.schema}"

    @property
    def history_topic(self) -> str:
        """MariaDB: the connector's schema-history topic (one partition, kept forever)."""
        return f"kafkaguard.schema-history.{self.slot}"

    @property
    def heartbeat_topic(self) -> str:
        """Where the connector's heartbeats go (Debezium's default prefix and this ``topic.prefix``)."""
        return f"__debezium-heartbeat.kafkaguard_{self.slot}"

    @property
    def replica_id(self) -> int:
        """MariaDB: ``server_id``, or a stable one from the schema (CRC-32; never the server's own id 1)."""
        return (
            self.server_id if self.server_id is not None else 100_000 + zlib.crc32(self.slot.encode()) % 2_000_000_000
        )


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
    on_mariadb = dialect_name(opts.database_url) == "mariadb"
    source = _mariadb_source(opts, url) if on_mariadb else _postgres_source(opts, url)
    password = (url.password or "") if password_reference is None else password_reference
    config: dict[str, Any] = {
        **source,
        "database.password": password,
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
    if not on_mariadb:
        config.update(database_ssl(opts.database_url))  # sslmode, sslrootcert, sslcert, sslkey of the libpq URL
    return {"name": opts.connector_name, "config": config}


def _postgres_source(opts: DebeziumOptions, url: URL) -> dict[str, str]:
    """The PostgreSQL connector's part: logical decoding (``pgoutput``) through a slot and a publication."""
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": url.host or "127.0.0.1",
        "database.port": str(url.port or 5432),
        "database.user": url.username or "",
        "database.dbname": url.database or "",
        "topic.prefix": f"kafkaguard_{opts.slot}",
        "schema.include.list": opts.schema,
        "table.include.list": f"{opts.schema}.outbox",
        "publication.name": f"{opts.slot}_outbox",
        "publication.autocreate.mode": "filtered",
        "slot.name": opts.slot,
        # Existing rows are the kafkaguard relay's business; Debezium relays what commits from now on.
        "snapshot.mode": "no_data",
    }


def mariadb_database(opts: DebeziumOptions) -> str:
    """The MariaDB database whose outbox is relayed: the schema (a database on MariaDB), else the URL's."""
    database = opts.schema if opts.schema != "public" else make_url(opts.database_url).database
    if not database:
        raise ConfigurationError("the MariaDB URL names no database and no schema was given")
    return database


def _mariadb_source(opts: DebeziumOptions, url: URL) -> dict[str, str]:
    """The MariaDB connector's part: the binlog from its end, the schema history in Kafka."""
    if not opts.bootstrap:
        raise ConfigurationError("the MariaDB connector keeps its schema history in Kafka: give the bootstrap servers")
    database = mariadb_database(opts)
    return {
        "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
        "tasks.max": "1",  # one binlog reader: commit order is the order it reads
        "database.hostname": url.host or "127.0.0.1",
        "database.port": str(url.port or 3306),
        "database.user": url.username or "",
        "database.server.id": str(opts.replica_id),
        "topic.prefix": f"kafkaguard_{opts.slot}",
        "database.include.list": database,
        "table.include.list": f"{database}.outbox",
        "schema.history.internal.kafka.bootstrap.servers": opts.bootstrap,
        "schema.history.internal.kafka.topic": opts.history_topic,
        "schema.history.internal.store.only.captured.tables.ddl": "true",
        "include.schema.changes": "false",
        # Existing rows are the kafkaguard relay's business; Debezium relays what commits from now on,
        # without FLUSH TABLES WITH READ LOCK (which would stall the writers).
        "snapshot.mode": "no_data",
        "snapshot.locking.mode": "none",
        # DATETIME(6) as Connect's Timestamp: an ISO 8601 header the consumer parses (milliseconds).
        "time.precision.mode": "connect",
        **{
            f"schema.history.internal.{client}.{name}": value
            for client in ("producer", "consumer")
            for name, value in opts.history_client
        },
    }


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
