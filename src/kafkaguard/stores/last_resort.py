"""``kafkaguard_last_resort``: rows that cannot be refused (bytes, numbers and ASCII only).

Written when a dead-letter row was refused for what it contains; read by ``kafkaguard last-resort``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert

from kafkaguard.db.tables import last_resort


def insert_last_resort(row: dict[str, Any]) -> Insert:
    """Insert one ``kafkaguard_last_resort`` row (as :func:`kafkaguard.consumer.dead_letters.last_resort_row`
    builds it); ``RETURNING id``."""
    return pg_insert(last_resort).values(**row).returning(last_resort.c.id)
