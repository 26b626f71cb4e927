"""The tables of both services. Each service owns a schema (its ``db_schema``), where
``kafkaguard db upgrade`` put kafkaguard's tables and :mod:`examples.signups.tables` puts these.

- signup service: ``users``;
- welcome service: ``welcome_emails`` (written only by the consumer, through the inbox) and
  ``blocked_domains`` (maintained by people: a signup from one of them gets no welcome e-mail
  until the domain is unblocked).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class SignupBase(DeclarativeBase):
    """Tables of the signup service."""


class WelcomeBase(DeclarativeBase):
    """Tables of the welcome service."""


class User(SignupBase):
    __tablename__ = "users"
    __mapper_args__ = {"eager_defaults": True}
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WelcomeEmail(WelcomeBase):
    """One e-mail to send per signup (a mailer would pick them up); ``event_id`` is unique, so even a
    bug that applied an event twice could not queue a second e-mail unnoticed."""

    __tablename__ = "welcome_emails"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    email: Mapped[str] = mapped_column(String(320))
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class BlockedDomain(WelcomeBase):
    """A domain whose signups are held (e.g. a disposable-mail provider under review)."""

    __tablename__ = "blocked_domains"
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
