"""Run a fake store's write when a user's SQLAlchemy session commits (and drop it on rollback).

The real stores write in the caller's transaction; a fake keeps the same promise by holding the
write until the session's ``after_commit`` event, so a rolled-back business transaction leaves
nothing in the fake either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session


def on_commit(session: Any, write: Callable[[], object]) -> None:
    """Run ``write`` when ``session`` commits, never if it rolls back; at once when ``session`` is None.

    ``session``: a SQLAlchemy :class:`~sqlalchemy.orm.Session` or
    :class:`~sqlalchemy.ext.asyncio.AsyncSession`, or None (no transaction: visible immediately).
    """
    if session is None:
        write()
        return
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    if not isinstance(sync, Session):
        raise TypeError(f"a fake store writes with a SQLAlchemy Session or None, not {type(session).__name__}")
    done = [False]  # the first of commit and rollback decides; the other listener then does nothing

    def committed(_session: Session) -> None:
        if not done[0]:
            done[0] = True
            write()

    def rolled_back(_session: Session, previous: Any = None) -> None:
        if getattr(previous, "nested", False):
            return  # a savepoint rolled back; the write may have come before it (kept: approximate)
        done[0] = True

    event.listen(sync, "after_commit", committed, once=True)
    event.listen(sync, "after_soft_rollback", rolled_back)
