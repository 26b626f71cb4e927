"""Request and response bodies of the content API (validated; unknown fields refused).

Input is strict: ``"7"`` or ``true`` is not a member id, ids fit PostgreSQL's ``bigint``, and text
may not contain NUL (PostgreSQL's ``text`` cannot store it) — each is a 422 before any write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

BIGINT_MAX = 2**63 - 1


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_character", "text may not contain the NUL character")
    return value


MemberId = Annotated[int, Field(gt=0, le=BIGINT_MAX)]
Text = Annotated[str, AfterValidator(_no_nul)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


class PostCreate(_In):
    author_id: MemberId
    title: Text = Field(min_length=1, max_length=200)
    body: Text = Field(min_length=1, max_length=20_000)


class PostUpdate(_In):
    author_id: MemberId = Field(description="who edits (the activity is recorded for this member)")
    title: Text | None = Field(default=None, min_length=1, max_length=200)
    body: Text | None = Field(default=None, min_length=1, max_length=20_000)


class CommentCreate(_In):
    author_id: MemberId
    body: Text = Field(min_length=1, max_length=5_000)


class CommentUpdate(_In):
    author_id: MemberId
    body: Text = Field(min_length=1, max_length=5_000)


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
