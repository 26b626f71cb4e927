"""the operator console: its audit log ``kafkaguard_console_audit``, and listener dead letters' throwing frame

One row per state-changing console action (retry, discard, redrive, edit-and-retry, refused
writes included): who (the name given at login, and the client address), when, what (the action,
the store and the records' ids), how many records it changed, and the operator's reason. Only
inserted and read, never updated; the ``at`` index serves the audit page, newest first.

``kafka_listener_dead_letters.stack_frame``: the last ``File "...", line N, in name`` line of the
record's stack (``-`` without one), a stored generated column: the console groups failures by error
class and this frame, and a regular expression per row at every page load took 1.5 s over 100,000
rows; stored, the grouping reads a short column. Adding it rewrites the table once (computing the
frame of every existing row); writers do not change (PostgreSQL computes it on insert).

On MariaDB the same table (``AUTO_INCREMENT`` id, ``DATETIME(6)``, ``JSON``) and ``stack_frame`` as a
stored generated column over :data:`MARIADB_STACK_FRAME`: the same frame as PostgreSQL's expression
and :func:`kafkaguard.console.fingerprint.throwing_frame` (the first frame that no later frame follows
is the last one; ``(?-i)``: case-sensitive whatever the collation).

Revision ID: 0004_console_audit
Revises: 0003_begin_event
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from kafkaguard.migrations import portable as my

revision = "0004_console_audit"
down_revision = "0003_begin_event"
branch_labels = None
depends_on = None

STACK_FRAME = """coalesce(rtrim((regexp_match(stack, '.*(File "[^"]*", line [0-9]+, in [^\\n]*)'))[1]), '-')"""


_FRAME = 'File "[^"]*", line [0-9]+, in '
MARIADB_STACK_FRAME = (
    f"coalesce(nullif(rtrim(regexp_substr(`stack`, '(?-i){_FRAME}(?!(?s:.*){_FRAME})[^\\n]*')), ''), '-')"
)


def upgrade() -> None:
    if my.on_mariadb():
        _upgrade_mariadb()
        return
    op.create_table(
        "kafkaguard_console_audit",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("remote", sa.Text, nullable=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("store", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("requested", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("changed", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index("ix_console_audit_at", "kafkaguard_console_audit", ["at"])
    op.add_column(
        "kafka_listener_dead_letters",
        sa.Column("stack_frame", sa.Text, sa.Computed(STACK_FRAME, persisted=True), nullable=False),
    )


def downgrade() -> None:
    if my.on_mariadb():
        op.drop_column("kafka_listener_dead_letters", "stack_frame")
        op.drop_table("kafkaguard_console_audit")
        return
    op.drop_column("kafka_listener_dead_letters", "stack_frame")
    op.drop_index("ix_console_audit_at", table_name="kafkaguard_console_audit")
    op.drop_table("kafkaguard_console_audit")


def _upgrade_mariadb() -> None:
    op.create_table(
        "kafkaguard_console_audit",
        sa.Column("id", sa.BigInteger, autoincrement=True, primary_key=True),
        sa.Column("at", my.timestamp(), nullable=False, server_default=my.now()),
        sa.Column("actor", my.text(), nullable=False),
        sa.Column("remote", my.text(), nullable=True),
        sa.Column("action", my.text(), nullable=False),
        sa.Column("store", my.text(), nullable=True),
        sa.Column("outcome", my.text(), nullable=False),
        sa.Column("requested", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("changed", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("reason", my.text(), nullable=True),
        sa.Column("detail", my.json(), nullable=False, server_default=my.json_default("{}")),
    )
    op.create_index("ix_console_audit_at", "kafkaguard_console_audit", ["at"])
    op.add_column(
        "kafka_listener_dead_letters",
        sa.Column("stack_frame", my.text(), sa.Computed(MARIADB_STACK_FRAME, persisted=True)),
    )
