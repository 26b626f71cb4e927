"""The activity service on a document store (dailyfeed's own shape): ``member_activities`` and both
dead-letter collections in MongoDB (FerretDB in the dev stack) instead of PostgreSQL.

Run the worker with ``KAFKAGUARD_DATABASE_URL=mongodb://127.0.0.1:27117/activity``: that URL alone
gives it kafkaguard's MongoDB consumer store (inbox, key leases, listener dead letters). The handler
upserts one document per event, ``_id`` the event id (the note's ``messageKey``): re-running it
for the same event writes nothing new, which is what the document store's guarantees need (see
``docs/operations/mongodb.md``). ``apply_count`` counts the runs, for reconciliation.
"""

from __future__ import annotations

from typing import Any

from examples.dailyfeed.activity.handlers import CONTENT_TYPES, MemberOnHoldError, checked_id, optional_id
from kafkaguard import Event, HandlerContext, HandlerRegistry

ACTIVITIES = "member_activities"
ON_HOLD = "members_on_hold"

registry = HandlerRegistry()


def record_activity(event: Event, ctx: HandlerContext[Any]) -> None:
    """Upsert the member's activity for ``event`` (keyed by its event id) in ``member_activities``."""
    db = ctx.session  # the pymongo Database: writes land at once, not with kafkaguard's inbox entry
    payload = event.payload
    member_id = checked_id("member_id", payload["member_id"])
    post_id, comment_id = optional_id(payload, "post_id"), optional_id(payload, "comment_id")
    if db[ON_HOLD].find_one({"_id": member_id}) is not None:
        raise MemberOnHoldError(f"activities of member {member_id} are on hold")
    fields = {
        "member_id": member_id,
        "activity_type": event.type,
        "post_id": post_id,
        "comment_id": comment_id,
        "occurred_at": event.occurred_at,
    }
    db[ACTIVITIES].update_one(
        {"_id": str(event.event_id)}, {"$setOnInsert": fields, "$inc": {"apply_count": 1}}, upsert=True
    )


for _type in CONTENT_TYPES:
    registry.register(_type, record_activity)
