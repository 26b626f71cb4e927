"""kafkaguard's tables as SQLAlchemy Core metadata (the migrations create exactly these).

Tables carry no schema name: they live in the connection's ``search_path``, so one database can
hold several services' schemas (as the reference services and the tests do).

``outbox`` is column-compatible with Debezium's Outbox Event Router: ``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``; every other column has a default, so a row inserted with
only those five (by another language, or a SQL console) is relayed like any other.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from kafkaguard.db import columns as C

metadata = MetaData()

outbox = Table(
    C.OUTBOX,
    metadata,
    # Debezium's five columns.
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("aggregatetype", String(255), nullable=False),
    Column("aggregateid", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("payload", JSONB, nullable=False),
    # Ours. seq orders rows of a key in insert order (= commit order for non-overlapping transactions).
    Column("seq", BigInteger, Identity(always=False), nullable=False, unique=True),
    Column(
        "shard",
        Integer,
        Computed(f"hashtext(aggregateid) & {C.OUTBOX_SHARDS - 1}", persisted=True),
        nullable=False,
    ),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("schema_version", Integer, nullable=False, server_default=text("1")),
    Column("topic", String(255), nullable=True),  # overrides the aggregate type's topic
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Index("ix_outbox_unpublished", "shard", "seq", postgresql_where=text("published_at IS NULL")),
    Index("ix_outbox_published", "published_at", postgresql_where=text("published_at IS NOT NULL")),
)

publisher_dead_letters = Table(
    C.PUBLISHER_DEAD_LETTERS,
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("key", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("aggregate_type", String(255), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("schema_version", Integer, nullable=False, server_default=text("1")),
    Column("source", String(32), nullable=False),  # PublishSource
    Column("status", String(16), nullable=False, server_default=C.DeadLetterStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_error_class", String(255), nullable=True),
    Column("last_error_message", Text, nullable=True),
    Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("restored_at", DateTime(timezone=True), nullable=True),
    Column("restored_by", String(64), nullable=True),  # how: republish | handoff | replay
    UniqueConstraint("event_id", name="uq_publisher_dead_letters_event_id"),
    Index("ix_publisher_dl_due", "status", "next_attempt_at"),
    Index("ix_publisher_dl_key", "key", "id"),
)

listener_dead_letters = Table(
    C.LISTENER_DEAD_LETTERS,
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("consumer_group", String(255), nullable=False),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", String(255), nullable=True),  # UTF-8 key; raw_key keeps the bytes
    Column("raw_key", LargeBinary, nullable=True),
    Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("raw_value", LargeBinary, nullable=True),
    Column("event_id", UUID(as_uuid=True), nullable=True),  # null when undecodable
    Column("type", String(255), nullable=True),
    Column("reason", String(64), nullable=False),  # DecodeReason, handler_error, parked, ...
    Column("error_class", String(255), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("stack", Text, nullable=True),
    Column("status", String(16), nullable=False, server_default=C.DeadLetterStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("restored_at", DateTime(timezone=True), nullable=True),
    Column("restored_by", String(64), nullable=True),
    UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_listener_dl_position"),
    Index("ix_listener_dl_due", "status", "next_attempt_at"),
    Index("ix_listener_dl_key", "consumer_group", "key", "id"),
)

inbox = Table(
    C.INBOX,
    metadata,
    Column("consumer_group", String(255), primary_key=True),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("type", String(255), nullable=True),
    Column("key", String(255), nullable=True),
    Column("topic", String(255), nullable=True),
    Column("partition", Integer, nullable=True),
    Column("offset", BigInteger, nullable=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_inbox_processed_at", "processed_at"),
)
