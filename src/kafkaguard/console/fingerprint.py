"""Failure groups: which records failed the same way (pure; the SQL form sits beside the Python one).

A group is the error class and the *throwing frame*: the last ``File "...", line N, in name``
line of a Python traceback, i.e. the code location that raised. Records without a stack (the
publisher store keeps the broker's error, not a traceback) have the frame ``-``. A group's id is
the first 12 hex digits of the MD5 of ``error class + newline + frame``: short, stable across
restarts and URL-safe; PostgreSQL computes the same value (:func:`group_id_sql`), so a filter by
group runs in the database.
"""

from __future__ import annotations

import hashlib
import re

from kafkaguard.db.columns import STACK_FRAME_SQL

NO_FRAME = "-"
GROUP_ID_LENGTH = 12

_FRAME = re.compile(r'File "[^"]*", line [0-9]+, in [^\n]*')


def throwing_frame(stack: str | None) -> str:
    """The last frame line of ``stack`` (``File "x.py", line 3, in f``), or ``-`` when there is none."""
    if not stack:
        return NO_FRAME
    frames = _FRAME.findall(stack)
    return frames[-1].rstrip() if frames else NO_FRAME


def group_id(error_class: str, frame: str) -> str:
    """The group's short id (see the module docstring); equal to what :func:`group_id_sql` computes."""
    digest = hashlib.md5(f"{error_class}\n{frame}".encode(), usedforsecurity=False).hexdigest()
    return digest[:GROUP_ID_LENGTH]


FRAME_SQL = STACK_FRAME_SQL
""":func:`throwing_frame` in SQL over a listener dead letter's ``stack`` (greedy ``.*``: the last frame; the
regular expression's ``\\n`` is a newline). Stored by migration 0004 as ``stack_frame``, the column the
console reads."""


def group_id_sql(error_class_sql: str, frame_sql: str) -> str:
    """SQL computing :func:`group_id` from two SQL expressions."""
    return f"left(md5({error_class_sql} || chr(10) || {frame_sql}), {GROUP_ID_LENGTH})"
