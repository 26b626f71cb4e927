"""The publisher's writers of ``kafka_publisher_dead_letters`` (kept for imports; the SQL lives in
:mod:`kafkaguard.stores.publisher_dead_letters`)."""

from __future__ import annotations

from kafkaguard.stores.publisher_dead_letters import (
    MAX_ERROR_MESSAGE,
    add_dead_letter,
    add_dead_letter_async,
    dead_letter_values,
    history_entry,
)

__all__ = ["MAX_ERROR_MESSAGE", "add_dead_letter", "add_dead_letter_async", "dead_letter_values", "history_entry"]
