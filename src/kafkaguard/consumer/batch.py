"""Batch mode (``ConsumerSettings.batch_size > 1``): one transaction for a chunk of messages.

Same guarantees as per-event mode: every key of the chunk is locked (sorted, so two workers never
deadlock), the chunk is applied only if none of its keys is blocked, the inbox rows are inserted in
bulk with ``ON CONFLICT DO NOTHING RETURNING event_id`` (rows not returned are duplicates), and the
handlers run in offset order in the same transaction: a batch handler once per run of consecutive
new events of its type (:func:`runs`), a per-event handler once per event. Anything unusual — an undecodable message,
an unknown or async type, a blocked key, a handler error — rolls the chunk back and returns
``None``: the caller then processes that chunk message by message, so one bad event never poisons
the others.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from kafkaguard.consumer.apply import Applier, call_handler, decode_record, inbox_row, position
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, Registration
from kafkaguard.envelope import DecodeError, Event
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.stores.inbox import ConsumerTx

log = logging.getLogger("kafkaguard.consumer")


class _Fallback(Exception):
    """The chunk cannot be applied as one transaction."""


def _decode_all(applier: Applier, records: Sequence[Record]) -> list[tuple[Record, Event, Registration]] | None:
    out = []
    for r in records:
        try:
            event = decode_record(r, applier.settings)
        except DecodeError:
            return None
        reg = applier.registry.get(event.type)
        if reg is None or reg.is_async:
            return None
        out.append((r, event, reg))
    return out


def _conflicts(tx: ConsumerTx, group: str, rows: dict[uuid.UUID, dict[str, Any]], new_ids: set[uuid.UUID]) -> bool:
    """Whether an event of the chunk that the inbox held already has other content there (an id conflict)."""
    seen = [i for i in rows if i not in new_ids]
    for event_id, digest in tx.hashes(group, seen).items():
        if digest is not None and digest != rows[event_id]["content_hash"]:
            return True
    return False


def runs(items: Sequence[tuple[Record, Event, Registration]]) -> list[list[tuple[Record, Event, Registration]]]:
    """Split ``items`` (new events in offset order) into the calls to make, in order: consecutive
    events of one batch registration form one call; every event of a per-event registration is a call."""
    out: list[list[tuple[Record, Event, Registration]]] = []
    for item in items:
        reg = item[2]
        if reg.batch and out and out[-1][0][2] is reg:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def apply_batch(applier: Applier, records: Sequence[Record]) -> list[Outcome] | None:
    """Apply ``records`` in one transaction and return their outcomes, or ``None`` to fall back."""
    items = _decode_all(applier, records)
    if items is None:
        return None
    group = applier.group
    keys = sorted({e.key for _, e, _ in items})
    try:
        with applier.store.transaction() as tx:
            tx.lock_keys(group, keys)  # one round trip, not one per key; sorted: no deadlock
            if tx.any_blocked(group, keys):
                raise _Fallback
            rows: dict[uuid.UUID, dict[str, Any]] = {}
            for r, e, reg in items:
                if not reg.inbox:
                    continue
                row = inbox_row(group, e, r)
                first = rows.setdefault(e.event_id, row)
                if first is not row and first["content_hash"] != row["content_hash"]:
                    raise _Fallback  # one id, two contents in this chunk: per-event processing tells them apart
            if rows:
                new_ids = tx.insert_inbox_batch(group, list(rows.values()))
                if len(new_ids) < len(rows) and _conflicts(tx, group, rows, new_ids):
                    raise _Fallback  # per-event processing dead-letters the conflicting event alone
            else:
                new_ids = set()
            outcomes: list[Outcome] = []
            new: list[tuple[Record, Event, Registration]] = []
            for item in items:
                e, reg = item[1], item[2]
                if reg.inbox:
                    if e.event_id not in new_ids:
                        outcomes.append(Outcome.DUPLICATE)
                        continue
                    new_ids.discard(e.event_id)  # a second copy inside the chunk is a duplicate too
                new.append(item)
                outcomes.append(Outcome.APPLIED)
            for call in runs(new):
                reg = call[0][2]
                if reg.batch:
                    ctx = BatchContext[Any](tx.session, group, [position(r) for r, _, _ in call])
                    reg.func([e for _, e, _ in call], ctx)
                else:
                    r, e, _ = call[0]
                    call_handler(reg, tx.session, group, r, e, attempt=1)
    except _Fallback:
        return None
    except StoreUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - any handler error: retry the chunk per event
        applier.raise_if_store_down(exc)
        log.info("batch of %d fell back to per-event processing group=%s: %r", len(records), group, exc)
        return None
    return outcomes
