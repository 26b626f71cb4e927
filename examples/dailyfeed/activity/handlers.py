"""The activity service's handlers: every content event becomes a member activity.

Registered with kafkaguard's inbox (the default), so the upsert and the inbox row commit in one
transaction; the upsert by event id is the dailyfeed note's own safety net on top.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from examples.dailyfeed.activity.models import MemberActivity
from kafkaguard import Event, HandlerContext, HandlerRegistry

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


BIGINT_MAX = 2**63 - 1


def checked_id(name: str, value: object) -> int:
    """``value`` as an id: a positive JSON integer within bigint, else ValueError.

    A missing member id (KeyError) or a malformed id (ValueError) is a permanent error: the event is
    dead-lettered at once (over HTTP: refused with 422) instead of retried, and nothing is written.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= BIGINT_MAX:
        raise ValueError(f"payload field {name!r} must be a positive integer id, not {value!r}")
    return value


def optional_id(payload: dict[str, object], name: str) -> int | None:
    value = payload.get(name)
    return None if value is None else checked_id(name, value)


def record_activity(event: Event, ctx: HandlerContext[Session]) -> None:
    """Upsert the member's activity for ``event`` (keyed by its event id)."""
    payload = event.payload
    member_id = checked_id("member_id", payload["member_id"])
    post_id, comment_id = optional_id(payload, "post_id"), optional_id(payload, "comment_id")
    if on_hold(ctx.session, member_id):
        raise MemberOnHoldError(f"activities of member {member_id} are on hold")
    stmt = insert(MemberActivity).values(
        event_id=event.event_id,
        member_id=member_id,
        activity_type=event.type,
        post_id=post_id,
        comment_id=comment_id,
        occurred_at=event.occurred_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[MemberActivity.event_id],
        set_={"apply_count": MemberActivity.apply_count + 1},
    )
    ctx.session.execute(stmt)


for _type in CONTENT_TYPES:
    registry.register(_type, record_activity)
