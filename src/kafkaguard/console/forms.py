"""Read URL-encoded form bodies and query strings into the console's typed requests (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import parse_qs

from kafkaguard.console.queries import Query
from kafkaguard.stores.dead_letter_queries import Store

MAX_FIELD = 100_000  # characters of one field (an edited payload is the largest)


class FormError(ValueError):
    """A field that cannot be read (the page says which)."""


def parse_form(body: bytes) -> dict[str, list[str]]:
    """``application/x-www-form-urlencoded`` fields, each with its values in order."""
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20_000)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(f"the form cannot be read: {exc}") from None
    return {k: [v[:MAX_FIELD] for v in vs] for k, vs in fields.items()}


def first(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The first non-empty value of ``name``, or None."""
    for value in fields.get(name, ()):
        if value.strip():
            return value.strip()
    return None


def store_of(value: str | None) -> Store:
    """The store a field names (default listener)."""
    try:
        return Store(value or Store.LISTENER.value)
    except ValueError:
        raise FormError(f"store must be publisher or listener, not {(value or '')[:40]!r}") from None


def ids_of(fields: Mapping[str, Sequence[str]]) -> list[int]:
    """Every ``id`` value as an integer, in order, without repeats."""
    out: list[int] = []
    for value in fields.get("id", ()):
        try:
            number = int(value)
        except ValueError:
            raise FormError(f"record id {value[:40]!r} is not a number") from None
        if number not in out:
            out.append(number)
    return out


def _time(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise FormError(f"{name} must be an ISO time (2026-01-31T12:00), not {value[:40]!r}") from None


def query_of(fields: Mapping[str, Sequence[str]]) -> Query:
    """The :class:`Query` of a query string or a form's filter fields."""
    status = first(fields, "status") or "open"
    after = first(fields, "after") or "0"
    if not after.isdigit():
        raise FormError("after must be a record id")
    return Query(
        store=store_of(first(fields, "store")),
        status=None if status == "any" else status,
        group=first(fields, "group"),
        event_type=first(fields, "type"),
        key=first(fields, "key"),
        error_class=first(fields, "error_class"),
        since=_time(first(fields, "since"), "since"),
        until=_time(first(fields, "until"), "until"),
        after=int(after),
    )
