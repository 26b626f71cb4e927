"""The welcome service's consumer: each ``user.signed_up`` queues one row of ``welcome_emails``.

    KAFKAGUARD_CONFIG=examples/signups/welcome.toml \
        python -m kafkaguard consume examples.signups.handlers:registry --group welcome-emails

An ``async def`` typed handler: the payload arrives validated as :class:`SignedUp` and ``ctx.session``
is an ``AsyncSession`` whose transaction also writes the inbox row ``(group, event_id)``, so the
e-mail is queued exactly once however often Kafka delivers the event.

A signup whose domain is in ``blocked_domains`` raises :class:`DomainBlockedError`, a ``ValueError``:
permanent for kafkaguard's default classifier, so the event is dead-lettered at once (no in-process
retries) and nothing is queued. Unblock the domain, then ``kafkaguard restore listener`` (the
scheduled job) or ``kafkaguard dead-letters replay`` (an operator) applies it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from examples.signups.events import SIGNED_UP, SignedUp
from examples.signups.models import BlockedDomain, WelcomeEmail
from kafkaguard import Exponential, HandlerContext, HandlerRegistry, RetryPolicy

registry = HandlerRegistry()


class DomainBlockedError(ValueError):
    """The signup's domain is blocked: no welcome e-mail until someone unblocks it."""


# A database hiccup is retried in process a little longer than the group's default (3 attempts).
RETRY = RetryPolicy(max_attempts=5, backoff=Exponential(base=0.2, factor=2, max_seconds=2))


@registry.handler(SIGNED_UP, model=SignedUp, retry=RETRY)
async def queue_welcome_email(signup: SignedUp, ctx: HandlerContext[AsyncSession]) -> None:
    """Queue the welcome e-mail of ``signup`` (commits with the inbox row; never commits itself)."""
    blocked = await ctx.session.scalar(select(BlockedDomain.reason).where(BlockedDomain.domain == signup.domain))
    if blocked is not None:
        raise DomainBlockedError(f"domain {signup.domain} is blocked ({blocked or 'no reason given'})")
    ctx.session.add(WelcomeEmail(user_id=signup.user_id, email=signup.email, event_id=ctx.event.event_id))
