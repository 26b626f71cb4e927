"""The activity service's handlers: every content event becomes a member activity.

Registered with kafkaguard's inbox (the default), so the upsert and the inbox row commit in one
transaction; the upsert by event id is the dailyfeed note's own safety net on top.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from examples.dailyfeed.activity.models import MemberActivity
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

CONTENT_TYPES = (
    "post.created",
    "post.updated",
    "post.deleted",
    "comment.created",
    "comment.updated",
    "comment.deleted",
)

registry = HandlerRegistry()


class MemberOnHoldError(RuntimeError):
    """The member's activities are on hold (e.g. during a data migration): retry later."""


def on_hold(session: Session, member_id: int) -> bool:
    """Whether ``activity.members_on_hold`` lists the member (the demo's way to make a handler fail)."""
    found = session.execute(text("SELECT 1 FROM members_on_hold WHERE member_id = :m"), {"m": member_id}).first()
    return found is not None


def record_activity(event: Event, ctx: HandlerContext[Session]) -> None:
    """Upsert the member's activity for ``event`` (keyed by its event id)."""
    payload = event.payload
    member_id = int(payload["member_id"])  # a payload without it is a permanent error (KeyError)
    if on_hold(ctx.session, member_id):
        raise MemberOnHoldError(f"activities of member {member_id} are on hold")
    stmt = insert(MemberActivity).values(
        event_id=event.event_id,
        member_id=member_id,
        activity_type=event.type,
        post_id=payload.get("post_id"),
        comment_id=payload.get("comment_id"),
        occurred_at=event.occurred_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[MemberActivity.event_id],
        set_={"apply_count": MemberActivity.apply_count + 1},
    )
    ctx.session.execute(stmt)


for _type in CONTENT_TYPES:
    registry.register(_type, record_activity)
