"""The content service (FastAPI): posts and comments; each write emits one event for its author.

Every write runs in one database transaction with its event: in ``outbox`` mode the event row
commits with the post; in ``direct``/``http`` mode the event is delivered (or dead-lettered) inside
the transaction; in ``background`` mode it is published after the commit. The write's event id is
journalled in ``content_writes`` in the same transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from examples.dailyfeed.config import DailyfeedSettings
from examples.dailyfeed.content import events
from examples.dailyfeed.content.models import Comment, ContentWrite, Post
from examples.dailyfeed.content.publishing import ContentPublisher
from examples.dailyfeed.content.schemas import (
    BIGINT_MAX,
    CommentCreate,
    CommentOut,
    CommentUpdate,
    PostCreate,
    PostOut,
    PostUpdate,
)
from kafkaguard import Event


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as s:
        yield s


Db = Annotated[AsyncSession, Depends(_session)]
# Ids in paths and queries are bigint: a larger number is a 422, not a database error (500).
PostId = Annotated[int, Path(gt=0, le=BIGINT_MAX)]
CommentId = Annotated[int, Path(gt=0, le=BIGINT_MAX)]
AuthorId = Annotated[int, Query(gt=0, le=BIGINT_MAX, description="the member who deletes")]


def create_app(settings: DailyfeedSettings | None = None) -> FastAPI:
    settings = settings or DailyfeedSettings()
    publisher = ContentPublisher(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        await publisher.close()

    app = FastAPI(title="dailyfeed content service", lifespan=lifespan)
    sessions = async_sessionmaker(publisher.engine, expire_on_commit=False)
    app.state.sessions = sessions
    publisher.install_error_handlers(app)

    async def write(db: AsyncSession, event: Event, mode_of: str) -> None:
        """Journal and publish ``event`` inside the open transaction of ``db``."""
        db.add(ContentWrite(event_id=event.event_id, type=event.type, key=event.key,
                            member_id=int(event.payload["member_id"]), mode=mode_of))  # fmt: skip
        await publisher.publish(db, event)

    async def get_post(db: AsyncSession, post_id: int) -> Post:
        post = await db.get(Post, post_id, with_for_update=True)
        if post is None:
            raise HTTPException(404, detail={"error": "post_not_found", "post_id": post_id})
        return post

    async def get_comment(db: AsyncSession, post_id: int, comment_id: int) -> Comment:
        comment = await db.get(Comment, comment_id, with_for_update=True)
        if comment is None or comment.post_id != post_id:
            raise HTTPException(
                404, detail={"error": "comment_not_found", "post_id": post_id, "comment_id": comment_id}
            )
        return comment

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/api/posts", status_code=201)
    async def create_post(body: PostCreate, db: Db) -> PostOut:
        async with db.begin():
            post = Post(author_id=body.author_id, title=body.title, body=body.body)
            db.add(post)
            await db.flush()
            event = events.post_event("post.created", post, body.author_id)
            await write(db, event, publisher.mode_name(event))
        return PostOut(**_post(post), event_id=str(event.event_id))

    @app.get("/api/posts/{post_id}")
    async def read_post(post_id: PostId, db: Db) -> PostOut:
        post = await db.get(Post, post_id)
        if post is None:
            raise HTTPException(404, detail={"error": "post_not_found", "post_id": post_id})
        return PostOut(**_post(post))

    @app.put("/api/posts/{post_id}")
    async def update_post(post_id: PostId, body: PostUpdate, db: Db) -> PostOut:
        if body.title is None and body.body is None:
            raise HTTPException(422, detail={"error": "nothing_to_update", "fields": ["title", "body"]})
        async with db.begin():
            post = await get_post(db, post_id)
            post.title = body.title or post.title
            post.body = body.body or post.body
            await db.flush()
            event = events.post_event("post.updated", post, body.author_id)
            await write(db, event, publisher.mode_name(event))
        return PostOut(**_post(post), event_id=str(event.event_id))

    @app.delete("/api/posts/{post_id}")
    async def delete_post(post_id: PostId, author_id: AuthorId, db: Db) -> dict[str, Any]:
        async with db.begin():
            post = await get_post(db, post_id)
            event = events.post_event("post.deleted", post, author_id)
            await db.delete(post)
            await write(db, event, publisher.mode_name(event))
        return {"deleted": post_id, "event_id": str(event.event_id)}

    @app.post("/api/posts/{post_id}/comments", status_code=201)
    async def create_comment(post_id: PostId, body: CommentCreate, db: Db) -> CommentOut:
        async with db.begin():
            await get_post(db, post_id)
            comment = Comment(post_id=post_id, author_id=body.author_id, body=body.body)
            db.add(comment)
            await db.flush()
            event = events.comment_event("comment.created", comment, body.author_id)
            await write(db, event, publisher.mode_name(event))
        return CommentOut(**_comment(comment), event_id=str(event.event_id))

    @app.put("/api/posts/{post_id}/comments/{comment_id}")
    async def update_comment(post_id: PostId, comment_id: CommentId, body: CommentUpdate, db: Db) -> CommentOut:
        async with db.begin():
            comment = await get_comment(db, post_id, comment_id)
            comment.body = body.body
            await db.flush()
            event = events.comment_event("comment.updated", comment, body.author_id)
            await write(db, event, publisher.mode_name(event))
        return CommentOut(**_comment(comment), event_id=str(event.event_id))

    @app.delete("/api/posts/{post_id}/comments/{comment_id}")
    async def delete_comment(post_id: PostId, comment_id: CommentId, author_id: AuthorId, db: Db) -> dict[str, Any]:
        async with db.begin():
            comment = await get_comment(db, post_id, comment_id)
            event = events.comment_event("comment.deleted", comment, author_id)
            await db.delete(comment)
            await write(db, event, publisher.mode_name(event))
        return {"deleted": comment_id, "event_id": str(event.event_id)}

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"error": "bad_request", "detail": str(exc)})

    app.state.publisher = publisher
    app.state.sessions = sessions
    return app


def _post(post: Post) -> dict[str, Any]:
    return {k: getattr(post, k) for k in ("id", "author_id", "title", "body", "created_at", "updated_at")}


def _comment(c: Comment) -> dict[str, Any]:
    return {k: getattr(c, k) for k in ("id", "post_id", "author_id", "body", "created_at", "updated_at")}
