"""The console's writes: retry, discard, redrive and edit-and-retry, each through the code the CLI uses.

- **retry** resets the chosen open records to pending and restores them now through
  :func:`kafkaguard.cli.replay.execute` — the restore jobs themselves, key by key under their
  per-key locks (a key another run holds is skipped, never processed twice), heads first, the
  parked records of each key after their head in arrival order;
- **redrive** (publisher records) is a retry with the ``republish`` strategy whatever
  ``restore.publisher_strategy`` says: the event goes back to its original topic;
- **discard** marks records discarded with the operator's reason in their history;
- **edit-and-retry** (publisher records, when ``console.edit_and_retry`` is on) stores a copy with
  the fixed payload under a new event id, whose ``kafkaguard_edited_from`` header names the
  original's, marks the original discarded (history: ``edited``, the new id), and retries the copy.

Every action checks before it changes: a refusal raises and leaves the records as they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from kafkaguard.cli.replay import Checked, ReplayRequest, check, execute, find_candidates
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db import columns as C
from kafkaguard.errors import ConfigurationError
from kafkaguard.ids import uuid7
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import Filters, Store, discard, history_json

EDITED_FROM_HEADER = "kafkaguard_edited_from"
"""Header of an edited copy: the event id of the dead letter it was made from (its lineage)."""


class ActionRefused(ConfigurationError):
    """The action cannot run as asked; nothing was changed. The message says why."""


@dataclass
class Result:
    """What an action did: how many records were asked for and changed, and one line for the page."""

    requested: int
    changed: int
    message: str
    ids: list[int] = field(default_factory=list)


def retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, ids: list[int], *, by: str,
    registry: HandlerRegistry | None, republish: bool = False,
) -> Result:  # fmt: skip
    """Restore the open records ``ids`` now (see the module docstring); raises :class:`ActionRefused`."""
    if not ids:
        raise ActionRefused("no records chosen")
    if store is Store.LISTENER and registry is None:
        raise ActionRefused(
            "retrying listener dead letters runs their handlers: start the console with --app module:registry"
        )
    if republish:
        if store is not Store.PUBLISHER:
            raise ActionRefused("redrive applies to publisher dead letters (they keep their original topic)")
        restore = settings.restore.model_copy(update={"publisher_strategy": PublisherStrategy.REPUBLISH})
        settings = settings.model_copy(update={"restore": restore})
    with engine.connect() as conn:
        candidates = find_candidates(conn, store, Filters(ids=tuple(ids)), limit=len(ids))
    if not candidates:
        raise ActionRefused("none of the chosen records is open (pending or failed)")
    groups = sorted({c.group for c in candidates if c.group}) if store is Store.LISTENER else [None]
    restored = 0
    lines = []
    for group in groups:
        chosen = [c for c in candidates if c.group == group] if group else candidates
        filters = Filters(ids=tuple(c.id for c in chosen), consumer_group=group)
        request = ReplayRequest(store, filters, len(chosen), registry=registry, by=by, app="the console's --app")
        checked: Checked = check(engine, request, chosen)
        summary = execute(settings, engine, request, checked)
        restored += len(summary.restored) + summary.also_restored
        lines.append(summary.line().replace("replay of", "retry of" if not republish else "redrive of"))
    return Result(len(ids), restored, "; ".join(lines), [c.id for c in candidates])


def discard_records(engine: Engine, store: Store, ids: list[int], *, by: str, reason: str) -> Result:
    """Mark ``ids`` discarded with ``reason``; raises :class:`ActionRefused` without a reason."""
    if not reason.strip():
        raise ActionRefused("a reason is needed to discard (it is kept in the records' history)")
    if not ids:
        raise ActionRefused("no records chosen")
    with engine.begin() as conn:
        done = discard(conn, store, Filters(ids=tuple(ids)), limit=len(ids), by=by, reason=reason.strip())
    return Result(len(ids), len(done), f"discarded {len(done)} of {len(ids)} {store.value} dead letter(s)", done)


COPY_SQL = f"""
INSERT INTO {C.PUBLISHER_DEAD_LETTERS}
  (event_id, key, type, aggregate_type, topic, payload, headers, occurred_at, schema_version, source,
   status, attempts, last_error_class, last_error_message, history)
SELECT :new_id, key, type, aggregate_type, topic, CAST(:payload AS jsonb),
       headers || jsonb_build_object('{EDITED_FROM_HEADER}', event_id::text), occurred_at, schema_version, source,
       'pending', 0, last_error_class, last_error_message, CAST(:entry AS jsonb)
FROM {C.PUBLISHER_DEAD_LETTERS} WHERE id = :id AND status IN ('pending', 'failed')
RETURNING id
"""  # noqa: S608 - constant table names

MARK_EDITED_SQL = f"""
UPDATE {C.PUBLISHER_DEAD_LETTERS} SET status = 'discarded', updated_at = now(),
  history = history || CAST(:entry AS jsonb) WHERE id = :id
"""  # noqa: S608

ORIGINAL_SQL = f"SELECT event_id FROM {C.PUBLISHER_DEAD_LETTERS} WHERE id = :id"  # noqa: S608


def edit_and_retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, record_id: int, payload_text: str, *, by: str
) -> Result:
    """Retry a fixed copy of publisher record ``record_id`` (see the module docstring)."""
    if store is not Store.PUBLISHER:
        raise ActionRefused("edit-and-retry applies to publisher dead letters")
    try:
        payload = json.loads(payload_text)
    except (ValueError, RecursionError):
        raise ActionRefused("the edited payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ActionRefused("the edited payload must be a JSON object")
    new_event = uuid7()
    with engine.begin() as conn:
        original = conn.execute(text(ORIGINAL_SQL), {"id": record_id}).scalar_one_or_none()
        entry = history_json("edited_copy", by=by, edited_from=str(original))
        new_id = conn.execute(
            text(COPY_SQL), {"new_id": new_event, "payload": json.dumps(payload), "entry": entry, "id": record_id}
        ).scalar_one_or_none()
        if new_id is None:
            raise ActionRefused(f"record {record_id} is not an open publisher dead letter")
        mark = history_json("edited", by=by, copy_id=int(new_id), copy_event_id=str(new_event))
        conn.execute(text(MARK_EDITED_SQL), {"entry": mark, "id": record_id})
    result = retry(settings, engine, store, [int(new_id)], by=by, registry=None)
    return Result(1, result.changed, f"edited copy #{new_id} (event {new_event}) of #{record_id}: {result.message}",
                  [record_id, int(new_id)])  # fmt: skip
