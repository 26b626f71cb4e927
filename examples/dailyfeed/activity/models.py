"""The activity service's projection (schema ``activity``): one row per event, upserted by event id.

As in the dailyfeed note, the write is an upsert keyed by the event id (``messageKey``). Behind
kafkaguard's inbox the upsert should never see a conflict; ``apply_count`` counts every time it
ran for the same event, so the demo measures duplicates from the database (``apply_count > 1``).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class MemberActivity(Base):
    __tablename__ = "member_activities"
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, index=True)
    activity_type: Mapped[str] = mapped_column(String(64))
    post_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    comment_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    apply_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class MemberOnHold(Base):
    """Members whose activities must not be recorded right now; the handler fails for them (retriable)."""

    __tablename__ = "members_on_hold"
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
