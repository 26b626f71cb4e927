"""Edit and retry (when ``console.edit_and_retry`` is on): a fixed payload retried as a new event.

The new event's ``kafkaguard_edited_from`` header names the original's event id (its lineage), and
it takes the original's place in its key's order, so the records behind it still come after it.
Publisher: a copy takes the original's record id; the original moves to a new id, ``discarded``,
its history (``edited``) naming the copy. Listener: the record is rewritten in place (its Kafka
coordinates identify it), the history entry ``edited`` keeping the original's event id and bytes.
Each under the lock of the key that the restore jobs take, then retried through them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, text

from kafkaguard.console.actions import ActionRefused, Result, retry
from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.db import columns as C
from kafkaguard.db.locks import PUBLISHER_SCOPE
from kafkaguard.db.safe_text import bytes_text
from kafkaguard.envelope import DEFAULT_MAX_PAYLOAD_DEPTH, too_deep
from kafkaguard.headers import EVENT_ID
from kafkaguard.ids import uuid7
from kafkaguard.logtext import short
from kafkaguard.raw_headers import Headers
from kafkaguard.raw_headers import decode as decode_headers
from kafkaguard.raw_headers import encode as encode_headers
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


def _payload(payload_text: str) -> dict[str, Any]:
    if too_deep(payload_text, DEFAULT_MAX_PAYLOAD_DEPTH):
        raise ActionRefused(f"the edited payload nests deeper than {DEFAULT_MAX_PAYLOAD_DEPTH} levels")
    try:
        payload = json.loads(payload_text)
    except (ValueError, RecursionError):
        raise ActionRefused("the edited payload is not valid JSON") from None
    if not isinstance(payload, dict):
        raise ActionRefused("the edited payload must be a JSON object")
    return payload


def edit_and_retry(
    settings: KafkaguardSettings, engine: Engine, store: Store, record_id: int, payload_text: str, *, by: str,
    registry: HandlerRegistry | None = None,
) -> Result:  # fmt: skip
    """Retry record ``record_id`` with a fixed payload as a new event (see the module docstring).

    Publisher: the copy takes the original's id — its place in the key's order, ahead of the
    records behind it — and the original moves to a new id, ``discarded``, its history naming the
    copy; under the publisher restore job's lock of the key (refused while a restore holds it).
    Listener: :func:`edit_listener_record`.
    """
    payload = _payload(payload_text)
    if store is Store.LISTENER:
        return edit_listener_record(settings, engine, record_id, payload, by=by, registry=registry)
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


LISTENER_ROW_SQL = f"""
SELECT id, consumer_group, key, event_id, raw_value, raw_headers, headers::text AS headers
FROM {C.LISTENER_DEAD_LETTERS} WHERE id = :id AND status IN ('pending', 'failed') FOR UPDATE
"""  # noqa: S608 - constant table name

LISTENER_EDIT_SQL = f"""
UPDATE {C.LISTENER_DEAD_LETTERS} SET event_id = :event_id, raw_value = :value, raw_headers = :raw_headers,
  headers = CAST(:headers AS jsonb), updated_at = now(), history = history || CAST(:entry AS jsonb)
WHERE id = :id
"""  # noqa: S608


def edited_headers(raw: bytes | None, readable: dict[str, Any], new_event: str, original: str) -> Headers:
    """The message headers with the new event id and the lineage header (exact bytes kept otherwise)."""
    if raw is not None:
        headers = [(k, v) for k, v in decode_headers(raw) if k not in (EVENT_ID, EDITED_FROM_HEADER)]
    else:  # rows stored before raw_headers existed: their readable copy
        headers = [(k, str(v).encode()) for k, v in readable.items() if k not in (EVENT_ID, EDITED_FROM_HEADER)]
    return [(EVENT_ID, new_event.encode()), *headers, (EDITED_FROM_HEADER, original.encode())]


def edit_listener_record(
    settings: KafkaguardSettings, engine: Engine, record_id: int, payload: dict[str, Any], *, by: str,
    registry: HandlerRegistry | None,
) -> Result:  # fmt: skip
    """Fix a listener dead letter's payload in place, as a new event, and retry it.

    A listener record is a Kafka message at its coordinates (group, topic, partition, offset), which
    identify it: the fixed event takes the record's place (its id, so the key's order holds) under a
    new event id with the ``kafkaguard_edited_from`` header; the history entry ``edited`` keeps the
    original's event id and exact bytes (hex). Under the consumer's lock of the key (refused while a
    consumer or a restore holds it), then retried through the listener restore job.
    """
    if registry is None:
        raise ActionRefused("retrying listener dead letters runs their handlers: start the console with --app")
    new_event = str(uuid7())
    with engine.begin() as conn:
        row = conn.execute(text(LISTENER_ROW_SQL), {"id": record_id}).first()
        if row is None:
            raise ActionRefused(f"record {record_id} is not an open listener dead letter")
        if row.key is not None:
            params = {"scope": row.consumer_group, "key": row.key}
            if not conn.execute(text(KEY_LOCK_SQL), params).scalar_one():
                raise ActionRefused(f"key {short(row.key, 60)} is being applied or restored right now: try again")
        original = str(row.event_id) if row.event_id is not None else "-"
        raw = bytes(row.raw_headers) if row.raw_headers is not None else None
        headers = edited_headers(raw, json.loads(row.headers or "{}"), new_event, original)
        value = bytes(row.raw_value) if row.raw_value is not None else b""
        entry = history_json("edited", by=by, edited_from=original, new_event_id=new_event, original_value=value.hex())
        conn.execute(text(LISTENER_EDIT_SQL), {
            "event_id": new_event, "value": json.dumps(payload).encode(), "raw_headers": encode_headers(headers),
            "headers": json.dumps({k: bytes_text(v) for k, v in headers}), "entry": entry, "id": record_id,
        })  # fmt: skip
    result = retry(settings, engine, Store.LISTENER, [record_id], by=by, registry=registry)
    return Result(1, result.changed, f"#{record_id} edited as event {new_event}: {result.message}", [record_id])
