"""Request and response bodies of the content API (validated; unknown fields refused)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PostCreate(_In):
    author_id: int = Field(gt=0)
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


class PostUpdate(_In):
    author_id: int = Field(gt=0, description="who edits (the activity is recorded for this member)")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)


class CommentCreate(_In):
    author_id: int = Field(gt=0)
    body: str = Field(min_length=1, max_length=5_000)


class CommentUpdate(_In):
    author_id: int = Field(gt=0)
    body: str = Field(min_length=1, max_length=5_000)


class DeleteBody(_In):
    author_id: int = Field(gt=0)


class PostOut(BaseModel):
    id: int
    author_id: int
    title: str
    body: str
    created_at: datetime
    updated_at: datetime
    event_id: str | None = None


class CommentOut(BaseModel):
    id: int
    post_id: int
    author_id: int
    body: str
    created_at: datetime
    updated_at: datetime
    event_id: str | None = None
