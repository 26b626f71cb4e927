"""the outbox row's trace context in a column of its own: ``outbox.traceparent``

kafkaguard's relay sends the row's ``headers`` JSON, ``traceparent`` included. Debezium's Outbox
Event Router cannot expand a JSON column into headers, but it places a column as a header
(``table.fields.additional.placement``): the publisher writes the event's ``traceparent`` here too,
so a trace goes on through Debezium as it does through kafkaguard's relay. Nullable: rows written
by an older kafkaguard, or without a trace, have none (and Debezium then sends no value).

Revision ID: 0005_outbox_traceparent
Revises: 0004_console_audit
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_outbox_traceparent"
down_revision = "0004_console_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("traceparent", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "traceparent")
