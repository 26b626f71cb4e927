"""kafkaguard's tables as SQLAlchemy Core metadata (the migrations create exactly these).

Tables carry no schema name: they live in the connection's ``search_path``, so one database can
hold several services' schemas (as the reference services and the tests do).

``outbox`` is column-compatible with Debezium's Outbox Event Router: ``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``; every other column has a default, so a row inserted with
only those five (by another language, or a SQL console) is relayed like any other.

Column types come from :mod:`kafkaguard.db.types`: PostgreSQL's own there, the MariaDB forms of the
migrations on MariaDB, so SQLAlchemy statements on these tables run on both.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
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

from kafkaguard.db import columns as C
from kafkaguard.db.types import json_type, utc_type, uuid_type

metadata = MetaData()

outbox = Table(
    C.OUTBOX,
    metadata,
    # Debezium's five columns.
    Column("id", uuid_type(), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("aggregatetype", Text, nullable=False),
    Column("aggregateid", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", json_type(), nullable=False),
    # Ours. seq orders rows of a key in insert order (= commit order for non-overlapping transactions).
    Column("seq", BigInteger, Identity(always=False), nullable=False, unique=True),
    Column(
        "shard",
        Integer,
        Computed(f"hashtext(aggregateid) & {C.OUTBOX_SHARDS - 1}", persisted=True),
        nullable=False,
    ),
    Column("headers", json_type(), nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", utc_type(), nullable=False, server_default=func.now()),
    Column("schema_version", Integer, nullable=False, server_default=text("1")),
    Column("topic", Text, nullable=True),  # overrides the aggregate type's topic
    Column("created_at", utc_type(), nullable=False, server_default=func.now()),
    Column("published_at", utc_type(), nullable=True),
    # headers' traceparent again, for Debezium's router (it places columns as headers, not JSON keys)
    Column("traceparent", Text, nullable=True),
    Index("ix_outbox_unpublished", "shard", "seq", postgresql_where=text("published_at IS NULL")),
    Index("ix_outbox_published", "published_at", postgresql_where=text("published_at IS NOT NULL")),
)

publisher_dead_letters = Table(
    C.PUBLISHER_DEAD_LETTERS,
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("event_id", uuid_type(), nullable=False),
    Column("key", Text, nullable=True),  # NULL: the event had no key (an empty aggregateid); blocks nothing
    Column("type", Text, nullable=False),
    Column("aggregate_type", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("payload", json_type(), nullable=False),
    Column("headers", json_type(), nullable=False, server_default=text("'{}'::jsonb")),
    Column("occurred_at", utc_type(), nullable=False),
    Column("schema_version", Integer, nullable=False, server_default=text("1")),
    Column("source", String(32), nullable=False),  # PublishSource
    Column("status", String(16), nullable=False, server_default=C.DeadLetterStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", utc_type(), nullable=False, server_default=func.now()),
    Column("last_error_class", Text, nullable=True),
    Column("last_error_message", Text, nullable=True),
    Column("history", json_type(), nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", utc_type(), nullable=False, server_default=func.now()),
    Column("updated_at", utc_type(), nullable=False, server_default=func.now()),
    Column("restored_at", utc_type(), nullable=True),
    Column("restored_by", String(64), nullable=True),  # how: republish | handoff | replay
    UniqueConstraint("event_id", name="uq_publisher_dead_letters_event_id"),
    Index("ix_publisher_dl_due", "status", "next_attempt_at"),
    # Hash indexes: keys of any length (a btree entry is limited to about 2.7 kB); equality is all we ask.
    Index("ix_publisher_dl_key", "key", postgresql_using="hash"),
)

listener_dead_letters = Table(
    C.LISTENER_DEAD_LETTERS,
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("consumer_group", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("key", Text, nullable=True),  # UTF-8 key; raw_key keeps the bytes
    Column("raw_key", LargeBinary, nullable=True),
    Column("headers", json_type(), nullable=False, server_default=text("'{}'::jsonb")),
    Column("raw_value", LargeBinary, nullable=True),
    Column("raw_headers", LargeBinary, nullable=True),  # kafkaguard.raw_headers encoding; exact bytes
    Column("event_id", uuid_type(), nullable=True),  # null when undecodable
    Column("type", Text, nullable=True),
    Column("reason", String(64), nullable=False),  # DecodeReason, handler_error, parked, ...
    Column("error_class", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("stack", Text, nullable=True),
    Column("stack_frame", Text, Computed(C.STACK_FRAME_SQL, persisted=True), nullable=False),  # migration 0004
    Column("status", String(16), nullable=False, server_default=C.DeadLetterStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", utc_type(), nullable=False, server_default=func.now()),
    Column("history", json_type(), nullable=False, server_default=text("'[]'::jsonb")),
    Column("created_at", utc_type(), nullable=False, server_default=func.now()),
    Column("updated_at", utc_type(), nullable=False, server_default=func.now()),
    Column("restored_at", utc_type(), nullable=True),
    Column("restored_by", String(64), nullable=True),
    UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_listener_dl_position"),
    Index("ix_listener_dl_due", "status", "next_attempt_at"),
    Index("ix_listener_dl_key", "key", postgresql_using="hash"),
)

inbox = Table(
    C.INBOX,
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("event_id", uuid_type(), primary_key=True),
    Column("type", Text, nullable=True),
    Column("key", Text, nullable=True),
    Column("topic", Text, nullable=True),
    Column("partition", Integer, nullable=True),
    Column("offset", BigInteger, nullable=True),
    Column("processed_at", utc_type(), nullable=False, server_default=func.now()),
    Column("content_hash", LargeBinary, nullable=True),  # kafkaguard.consumer.identity; NULL on old rows
    Index("ix_inbox_processed_at", "processed_at"),
)

last_resort = Table(
    C.LAST_RESORT,
    metadata,
    # Bytes, numbers and ASCII text only: nothing here can be refused for what it contains.
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("store", Text, nullable=False),  # "listener" | "publisher"
    Column("consumer_group", Text, nullable=True),
    Column("topic", Text, nullable=True),
    Column("partition", Integer, nullable=True),
    Column("offset", BigInteger, nullable=True),
    Column("outbox_id", uuid_type(), nullable=True),
    Column("raw_key", LargeBinary, nullable=True),
    Column("raw_value", LargeBinary, nullable=True),
    Column("raw_headers", LargeBinary, nullable=True),
    Column("error", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=C.DeadLetterStatus.PENDING.value),
    Column("created_at", utc_type(), nullable=False, server_default=func.now()),
)

console_audit = Table(
    C.CONSOLE_AUDIT,
    metadata,
    # One row per state-changing console action, refusals included; inserted, never updated.
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("at", utc_type(), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("remote", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("store", Text, nullable=True),
    Column("outcome", Text, nullable=False),  # done | cancelled | refused | failed
    Column("requested", Integer, nullable=False, server_default=text("0")),
    Column("changed", Integer, nullable=False, server_default=text("0")),
    Column("reason", Text, nullable=True),
    Column("detail", json_type(), nullable=False, server_default=text("'{}'::jsonb")),
    Index("ix_console_audit_at", "at"),
)
