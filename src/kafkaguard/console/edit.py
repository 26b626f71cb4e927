"""Edit and retry (publisher records, when ``console.edit_and_retry`` is on): a fixed copy under a new event id.

The copy's ``kafkaguard_edited_from`` header names the original's event id (its lineage). The copy
takes the original's record id — its place in the key's order, ahead of the records behind it — and
the original moves to a new id, ``discarded``, its history (``edited``) naming the copy; then the
copy is retried through the publisher restore job. All of it under the job's lock of the key.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from kafkaguard.console.actions import ActionRefused, Result, retry
from kafkaguard.db import columns as C
from kafkaguard.db.locks import PUBLISHER_SCOPE
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, too_deep
from kafkaguard.ids import uuid7
from kafkaguard.logtext import short
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.dead_letter_queries import Store, history_json

EDITED_FROM_HEADER = "kafkaguard_edited_from"
"""Header of an edited copy: the event id of the dead letter it was made from (its lineage)."""

ORIGINAL_SQL = f"""
SELECT event_id, key FROM {C.PUBLISHER_DEAD_LETTERS} WHERE id = :id AND status IN ('pending', 'failed')
"""  # noqa: S608 - constant table names

KEY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtext(:scope), hashtext(:key))"
"""The publisher restore job's per-key lock (as ``PostgresPublisherDeadLetters.hold_key`` takes it)."""

MOVE_ORIGINAL_SQL = f"""
UPDATE {C.PUBLISHER_DEAD_LETTERS}
SET id = nextval(pg_get_serial_sequence('{C.PUBLISHER_DEAD_LETTERS}', 'id')), status = 'discarded',
    updated_at = now(), history = history || CAST(:entry AS jsonb)
WHERE id = :id AND status IN ('pending', 'failed') RETURNING id
"""  # noqa: S608
"""The original leaves its place (its id) to the copy, so that the copy keeps the key's order."""

COPY_SQL = f"""
INSERT INTO {C.PUBLISHER_DEAD_LETTERS}
  (id, event_id, key, type, aggregate_type, topic, payload, headers, occurred_at, schema_version, source,
   status, attempts, last_error_class, last_error_message, history)
SELECT :id, :new_event, key, type, aggregate_type, topic, CAST(:payload AS jsonb),
       headers || jsonb_build_object('{EDITED_FROM_HEADER}', event_id::text), occurred_at, schema_version, source,
       'pending', 0, last_error_class, last_error_message, CAST(:entry AS jsonb)
FROM {C.PUBLISHER_DEAD_LETTERS} WHERE id = :moved
"""  # noqa: S608


def edit_and_retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, record_id: int, payload_text: str, *, by: str
) -> Result:
    """Retry a fixed copy of publisher record ``record_id`` (see the module docstring).

    The copy takes the original's id — its place in the key's order, ahead of the records behind
    it — and the original moves to a new id, ``discarded``, its history naming the copy. Done under
    the publisher restore job's lock of the key: refused while a restore holds it.
    """
    if store is not Store.PUBLISHER:
        raise ActionRefused("edit-and-retry applies to publisher dead letters")
    if too_deep(payload_text, DEFAULT_MAX_PAYLOAD_DEPTH):
        raise ActionRefused(f"the edited payload nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels")
    try:
        payload = json.loads(payload_text)
    except (ValueError, RecursionError):
        raise ActionRefused("the edited payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ActionRefused("the edited payload must be a JSON object")
    new_event = uuid7()
    with engine.begin() as conn:
        original = conn.execute(text(ORIGINAL_SQL), {"id": record_id}).first()
        if original is None:
            raise ActionRefused(f"record {record_id} is not an open publisher dead letter")
        if original.key is not None:
            params = {"scope": PUBLISHER_SCOPE, "key": original.key}
            if not conn.execute(text(KEY_LOCK_SQL), params).scalar_one():
                raise ActionRefused(f"key {short(original.key, 60)} is being restored right now: try again")
        mark = history_json("edited", by=by, copy_id=record_id, copy_event_id=str(new_event))
        moved = conn.execute(text(MOVE_ORIGINAL_SQL), {"entry": mark, "id": record_id}).scalar_one_or_none()
        if moved is None:
            raise ActionRefused(f"record {record_id} changed meanwhile: reload the page")
        entry = history_json("edited_copy", by=by, edited_from=str(original.event_id), original_id=int(moved))
        conn.execute(text(COPY_SQL), {"id": record_id, "new_event": new_event, "payload": json.dumps(payload),
                                      "entry": entry, "moved": moved})  # fmt: skip
    result = retry(settings, engine, store, [record_id], by=by, registry=None)
    message = f"edited copy #{record_id} (event {new_event}; the original is now #{moved}): {result.message}"
    return Result(1, result.changed, message, [record_id, int(moved)])
