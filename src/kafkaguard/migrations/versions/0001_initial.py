"""initial schema: outbox, dead letters, inbox

On MariaDB (:mod:`kafkaguard.migrations.portable`) the same tables, created with the text widths
0002 gives PostgreSQL (``LONGTEXT``; ``VARCHAR(255)`` inside keys); there is no NOTIFY trigger
(relays on MariaDB will poll).

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-22 00:16:40.273389
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from kafkaguard.migrations import portable as my

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None


NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION kafkaguard_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('kafkaguard_outbox', TG_TABLE_SCHEMA);
  RETURN NULL;
END $$
"""

NOTIFY_TRIGGER = """
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
FOR EACH STATEMENT EXECUTE FUNCTION kafkaguard_outbox_notify()
"""


def upgrade() -> None:
    if my.on_mariadb():
        _upgrade_mariadb()
        return
    op.create_table(
        "kafka_inbox",
        sa.Column("consumer_group", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id"),
    )
    op.create_index("ix_inbox_processed_at", "kafka_inbox", ["processed_at"], unique=False)
    op.create_table(
        "kafka_listener_dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("consumer_group", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.Column("raw_key", sa.LargeBinary(), nullable=True),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("raw_value", sa.LargeBinary(), nullable=True),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("error_class", sa.String(length=255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("stack", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "history", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_listener_dl_position"),
    )
    op.create_index("ix_listener_dl_due", "kafka_listener_dead_letters", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_listener_dl_key", "kafka_listener_dead_letters", ["consumer_group", "key", "id"], unique=False)
    op.create_table(
        "kafka_publisher_dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("aggregate_type", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error_class", sa.String(length=255), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column(
            "history", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'[]'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_publisher_dead_letters_event_id"),
    )
    op.create_index("ix_publisher_dl_due", "kafka_publisher_dead_letters", ["status", "next_attempt_at"], unique=False)
    op.create_index("ix_publisher_dl_key", "kafka_publisher_dead_letters", ["key", "id"], unique=False)
    op.create_table(
        "outbox",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("aggregatetype", sa.String(length=255), nullable=False),
        sa.Column("aggregateid", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("shard", sa.Integer(), sa.Computed("hashtext(aggregateid) & 63", persisted=True), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq"),
    )
    op.create_index(
        "ix_outbox_published",
        "outbox",
        ["published_at"],
        unique=False,
        postgresql_where=sa.text("published_at IS NOT NULL"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["shard", "seq"],
        unique=False,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    # Wake relays on insert (one NOTIFY per statement, payload = the schema, so relays of other
    # schemas in the same database can ignore it). Rows inserted by any client fire it.
    op.execute(NOTIFY_FUNCTION)
    op.execute(NOTIFY_TRIGGER)


def downgrade() -> None:
    if my.on_mariadb():
        for table in ("outbox", "kafka_publisher_dead_letters", "kafka_listener_dead_letters", "kafka_inbox"):
            op.drop_table(table)
        return
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS kafkaguard_outbox_notify()")
    op.drop_index("ix_outbox_unpublished", table_name="outbox", postgresql_where=sa.text("published_at IS NULL"))
    op.drop_index("ix_outbox_published", table_name="outbox", postgresql_where=sa.text("published_at IS NOT NULL"))
    op.drop_table("outbox")
    op.drop_index("ix_publisher_dl_key", table_name="kafka_publisher_dead_letters")
    op.drop_index("ix_publisher_dl_due", table_name="kafka_publisher_dead_letters")
    op.drop_table("kafka_publisher_dead_letters")
    op.drop_index("ix_listener_dl_key", table_name="kafka_listener_dead_letters")
    op.drop_index("ix_listener_dl_due", table_name="kafka_listener_dead_letters")
    op.drop_table("kafka_listener_dead_letters")
    op.drop_index("ix_inbox_processed_at", table_name="kafka_inbox")
    op.drop_table("kafka_inbox")


def _upgrade_mariadb() -> None:
    ts, now = my.timestamp, my.now
    op.create_table(
        "kafka_inbox",
        sa.Column("consumer_group", my.key_text(), nullable=False),
        sa.Column("event_id", my.uuid(), nullable=False),
        sa.Column("type", my.text(), nullable=True),
        sa.Column("key", my.text(), nullable=True),
        sa.Column("topic", my.text(), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("processed_at", ts(), server_default=now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "event_id"),
    )
    op.create_index("ix_inbox_processed_at", "kafka_inbox", ["processed_at"])
    op.create_table(
        "kafka_listener_dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("consumer_group", my.key_text(), nullable=False),
        sa.Column("topic", my.key_text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", my.text(), nullable=True),
        sa.Column("raw_key", my.blob(), nullable=True),
        sa.Column("headers", my.json(), server_default=my.json_default("{}"), nullable=False),
        sa.Column("raw_value", my.blob(), nullable=True),
        sa.Column("event_id", my.uuid(), nullable=True),
        sa.Column("type", my.text(), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("error_class", my.text(), nullable=True),
        sa.Column("error_message", my.text(), nullable=True),
        sa.Column("stack", my.text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", ts(), server_default=now(), nullable=False),
        sa.Column("history", my.json(), server_default=my.json_default("[]"), nullable=False),
        sa.Column("created_at", ts(), server_default=now(), nullable=False),
        sa.Column("updated_at", ts(), server_default=now(), nullable=False),
        sa.Column("restored_at", ts(), nullable=True),
        sa.Column("restored_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_listener_dl_position"),
    )
    op.create_index("ix_listener_dl_due", "kafka_listener_dead_letters", ["status", "next_attempt_at"])
    op.create_index("ix_listener_dl_key", "kafka_listener_dead_letters", ["key"], mysql_length={"key": my.KEY_PREFIX})
    op.create_table(
        "kafka_publisher_dead_letters",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", my.uuid(), nullable=False),
        sa.Column("key", my.text(), nullable=False),
        sa.Column("type", my.text(), nullable=False),
        sa.Column("aggregate_type", my.text(), nullable=False),
        sa.Column("topic", my.text(), nullable=False),
        sa.Column("payload", my.json(), nullable=False),
        sa.Column("headers", my.json(), server_default=my.json_default("{}"), nullable=False),
        sa.Column("occurred_at", ts(), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", ts(), server_default=now(), nullable=False),
        sa.Column("last_error_class", my.text(), nullable=True),
        sa.Column("last_error_message", my.text(), nullable=True),
        sa.Column("history", my.json(), server_default=my.json_default("[]"), nullable=False),
        sa.Column("created_at", ts(), server_default=now(), nullable=False),
        sa.Column("updated_at", ts(), server_default=now(), nullable=False),
        sa.Column("restored_at", ts(), nullable=True),
        sa.Column("restored_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_publisher_dead_letters_event_id"),
    )
    op.create_index("ix_publisher_dl_due", "kafka_publisher_dead_letters", ["status", "next_attempt_at"])
    op.create_index("ix_publisher_dl_key", "kafka_publisher_dead_letters", ["key"], mysql_length={"key": my.KEY_PREFIX})
    op.create_table(
        "outbox",
        sa.Column("id", my.uuid(), server_default=sa.text("(uuid())"), nullable=False),
        sa.Column("aggregatetype", my.text(), nullable=False),
        sa.Column("aggregateid", my.text(), nullable=False),
        sa.Column("type", my.text(), nullable=False),
        sa.Column("payload", my.json(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.Integer(), sa.Computed(my.OUTBOX_SHARD, persisted=True)),
        sa.Column("headers", my.json(), server_default=my.json_default("{}"), nullable=False),
        sa.Column("occurred_at", ts(), server_default=now(), nullable=False),
        sa.Column("schema_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("topic", my.text(), nullable=True),
        sa.Column("created_at", ts(), server_default=now(), nullable=False),
        sa.Column("published_at", ts(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("seq", name="uq_outbox_seq"),
    )
    # MariaDB allows one AUTO_INCREMENT column, and only on a key: seq's unique key exists now.
    op.execute("ALTER TABLE outbox MODIFY seq BIGINT NOT NULL AUTO_INCREMENT")
    op.create_index("ix_outbox_published", "outbox", ["published_at"])
    # No partial index: the unpublished rows of a shard are found through published_at IS NULL.
    op.create_index("ix_outbox_unpublished", "outbox", ["shard", "published_at", "seq"])
