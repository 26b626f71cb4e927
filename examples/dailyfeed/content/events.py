"""The events the content service emits: one per write, for the member who made it.

Key: the aggregate (``post-<id>``, ``comment-<id>``), so the events of one post or comment keep
their order; the payload names the member (``member_id``) whose activity it records.
"""

from __future__ import annotations

from examples.dailyfeed.content.models import Comment, Post
from kafkaguard import Event


def post_event(event_type: str, post: Post, member_id: int) -> Event:
    return Event(
        type=event_type,
        key=f"post-{post.id}",
        aggregate_type="post",
        payload={"member_id": member_id, "post_id": post.id, "title": post.title},
    )


def comment_event(event_type: str, comment: Comment, member_id: int) -> Event:
    return Event(
        type=event_type,
        key=f"comment-{comment.id}",
        aggregate_type="comment",
        payload={"member_id": member_id, "post_id": comment.post_id, "comment_id": comment.id},
    )
