"""inputs of any size and shape: text columns, exact header bytes, content hashes, last-resort store

- every key, type, topic and group column becomes ``text`` (Kafka accepts keys far over 255
  characters); the key indexes become hash indexes, which take values of any length (a btree
  entry is limited to about 2.7 kB);
- ``raw_headers`` (``bytea``) keeps a listener dead letter's headers byte for byte;
- ``kafka_publisher_dead_letters.key`` may be NULL: an outbox row without an aggregate id is
  dead-lettered under no key, so it can never hold back a real key;
- ``kafka_inbox.content_hash``: the digest of an applied event's content, so the same event id
  arriving with different content is told apart from a duplicate;
- ``kafkaguard_last_resort``: bytes, numbers and ASCII only, for the rare record whose normal dead
  letter the database refuses.

On MariaDB the text columns and key indexes already have this shape (0001 creates them so); the
rest is the same: the nullable key, ``raw_headers``, ``content_hash`` and the last-resort table.

Revision ID: 0002_total_inputs
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kafkaguard.migrations import portable as my

revision = "0002_total_inputs"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_TEXT_COLUMNS = {
    "outbox": ("aggregatetype", "aggregateid", "type", "topic"),
    "kafka_publisher_dead_letters": ("key", "type", "aggregate_type", "topic", "last_error_class"),
    "kafka_listener_dead_letters": ("consumer_group", "topic", "key", "type", "error_class"),
    "kafka_inbox": ("consumer_group", "type", "key", "topic"),
}


def upgrade() -> None:
    if my.on_mariadb():
        _upgrade_mariadb()
        return
    # The stored shard column is computed from aggregateid: PostgreSQL cannot change the type of a
    # column a generated column uses, so the shard column (and its index) is rebuilt around it.
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_column("outbox", "shard")
    for table, columns in _TEXT_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.Text(), existing_nullable=True)
    op.add_column(
        "outbox",
        sa.Column("shard", sa.Integer(), sa.Computed("hashtext(aggregateid) & 63", persisted=True), nullable=False),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["shard", "seq"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.alter_column("kafka_publisher_dead_letters", "key", nullable=True)
    op.drop_index("ix_publisher_dl_key", table_name="kafka_publisher_dead_letters")
    op.create_index("ix_publisher_dl_key", "kafka_publisher_dead_letters", ["key"], postgresql_using="hash")
    op.drop_index("ix_listener_dl_key", table_name="kafka_listener_dead_letters")
    op.create_index("ix_listener_dl_key", "kafka_listener_dead_letters", ["key"], postgresql_using="hash")
    op.add_column("kafka_listener_dead_letters", sa.Column("raw_headers", sa.LargeBinary(), nullable=True))
    op.add_column("kafka_inbox", sa.Column("content_hash", sa.LargeBinary(), nullable=True))
    op.create_table(
        "kafkaguard_last_resort",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("store", sa.Text(), nullable=False),  # listener | publisher
        sa.Column("consumer_group", sa.Text(), nullable=True),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", sa.UUID(), nullable=True),
        sa.Column("raw_key", sa.LargeBinary(), nullable=True),
        sa.Column("raw_value", sa.LargeBinary(), nullable=True),
        sa.Column("raw_headers", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),  # ASCII: why the normal dead letter was refused
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    if my.on_mariadb():
        _downgrade_mariadb()
        return
    op.drop_table("kafkaguard_last_resort")
    op.drop_column("kafka_inbox", "content_hash")
    op.drop_column("kafka_listener_dead_letters", "raw_headers")
    op.drop_index("ix_listener_dl_key", table_name="kafka_listener_dead_letters")
    op.create_index("ix_listener_dl_key", "kafka_listener_dead_letters", ["consumer_group", "key", "id"])
    op.drop_index("ix_publisher_dl_key", table_name="kafka_publisher_dead_letters")
    op.create_index("ix_publisher_dl_key", "kafka_publisher_dead_letters", ["key", "id"])
    op.execute("DELETE FROM kafka_publisher_dead_letters WHERE key IS NULL")
    op.alter_column("kafka_publisher_dead_letters", "key", nullable=False)
    op.drop_index("ix_outbox_unpublished", table_name="outbox")
    op.drop_column("outbox", "shard")
    for table, columns in _TEXT_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=sa.String(255), existing_nullable=True)
    op.add_column(
        "outbox",
        sa.Column("shard", sa.Integer(), sa.Computed("hashtext(aggregateid) & 63", persisted=True), nullable=False),
    )
    op.create_index(
        "ix_outbox_unpublished", "outbox", ["shard", "seq"], postgresql_where=sa.text("published_at IS NULL")
    )


def _upgrade_mariadb() -> None:
    op.alter_column("kafka_publisher_dead_letters", "key", nullable=True, existing_type=my.text())
    op.add_column("kafka_listener_dead_letters", sa.Column("raw_headers", my.blob(), nullable=True))
    op.add_column("kafka_inbox", sa.Column("content_hash", my.blob(), nullable=True))
    op.create_table(
        "kafkaguard_last_resort",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("store", my.text(), nullable=False),
        sa.Column("consumer_group", my.text(), nullable=True),
        sa.Column("topic", my.text(), nullable=True),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("outbox_id", my.uuid(), nullable=True),
        sa.Column("raw_key", my.blob(), nullable=True),
        sa.Column("raw_value", my.blob(), nullable=True),
        sa.Column("raw_headers", my.blob(), nullable=True),
        sa.Column("error", my.text(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("created_at", my.timestamp(), server_default=my.now(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def _downgrade_mariadb() -> None:
    op.drop_table("kafkaguard_last_resort")
    op.drop_column("kafka_inbox", "content_hash")
    op.drop_column("kafka_listener_dead_letters", "raw_headers")
    op.execute("DELETE FROM kafka_publisher_dead_letters WHERE `key` IS NULL")
    op.alter_column("kafka_publisher_dead_letters", "key", nullable=False, existing_type=my.text())
