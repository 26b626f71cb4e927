"""The publisher dead-letter store (writer and restore side) as the ``kafka_publisher_dead_letters``
collection of a MongoDB-wire server, dailyfeed's own shape.

What changes without multi-document transactions:

- :meth:`MongoPublisherDeadLetters.add` writes the record **at once**, not when the caller's
  transaction commits. Given a SQLAlchemy ``Session`` or ``Connection`` (the business data in SQL),
  the record is removed again if that transaction rolls back; a process killed between the two
  leaves a dead letter of an event whose business write did not commit, which the restore job then
  publishes (a phantom, never a loss). Given ``None`` (the business data in the document store
  too), the record is simply written.
- One record per event id (a unique index): a second ``add`` of the event is a no-op.
- A key is held by one restore run at a time through a lease document
  (:class:`~kafkaguard.stores.mongo_documents.KeyLeases`), as PostgreSQL's ``FOR UPDATE``.
- ``payload`` and ``headers`` are stored as JSON text (any key, any depth the writer accepted:
  never refused for a field name), ``occurred_at`` as ISO text (microseconds kept; BSON dates keep
  milliseconds).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from kafkaguard.db.columns import DeadLetterStatus, PublishSource
from kafkaguard.envelope import Event
from kafkaguard.stores.mongo_documents import (
    PUBLISHER_DEAD_LETTERS,
    Document,
    KeyLeases,
    connect,
    next_id,
    require_answer,
    utcnow,
)
from kafkaguard.stores.publisher_dead_letters import dead_letter_values, outcome_params
from kafkaguard.stores.restore_decision import RestoreDecision

_OPEN_FOR_RESTORE = [DeadLetterStatus.PENDING.value, DeadLetterStatus.FAILED.value]


def _as_read(doc: Document) -> dict[str, Any]:
    """A stored document as the columns the restore job reads (see ``HeldRecords.records``)."""
    row = {k: v for k, v in doc.items() if k != "_id"}
    row["id"] = int(doc["_id"])
    occurred = doc.get("occurred_at")
    row["occurred_at"] = datetime.fromisoformat(occurred) if isinstance(occurred, str) else None
    return row


class MongoHeldRecords:
    """One key's (or one keyless record's) open records, held by a lease; outcomes are written at once."""

    def __init__(self, store: MongoPublisherDeadLetters, records: list[dict[str, Any]]) -> None:
        self._store = store
        self.records = records

    def record_outcome(self, record_id: int, outcome: RestoreDecision, error: BaseException | None) -> None:
        p = outcome_params(record_id, outcome, error)
        now = self._store.clock()
        values: Document = {"status": p["status"], "attempts": p["attempts"], "next_attempt_at": p["next"]}
        values["updated_at"] = now
        if p["restored"]:
            values.update(restored_at=now, restored_by=p["by"])
        if p["err_cls"] is not None:
            values.update(last_error_class=p["err_cls"], last_error_message=p["err_msg"])
        entries = json.loads(p["entry"])
        update = {"$set": values, "$push": {"history": {"$each": entries}}}
        self._store.collection.update_one({"_id": record_id}, update)


class MongoPublisherDeadLetters:
    """``PublisherDeadLetterWriter`` and ``PublisherDeadLetterStore`` on a pymongo ``Database`` (see
    the module docstring). ``lease``: seconds a restore run's key hold lasts without its owner."""

    def __init__(self, db: Any, *, lease: float = 60.0, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.leases = KeyLeases(db, lease=lease, clock=clock)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MongoPublisherDeadLetters:
        """The store of ``mongodb://host:port/<database>``, its indexes ensured; raises
        :class:`~kafkaguard.errors.StoreUnavailableError` if the server does not answer."""
        store = cls(connect(url), **options)
        require_answer(store.db)  # one line naming the server, not pymongo's topology dump
        store.ensure_indexes()
        return store

    @property
    def collection(self) -> Any:
        return self.db[PUBLISHER_DEAD_LETTERS]

    def ensure_indexes(self) -> None:
        """Create the indexes the guarantees rest on (idempotent)."""
        self.collection.create_index([("event_id", 1)], unique=True, name="ux_publisher_dl_event")
        self.collection.create_index([("key", 1), ("status", 1)], name="ix_publisher_dl_key")
        self.collection.create_index([("status", 1), ("next_attempt_at", 1)], name="ix_publisher_dl_due")

    # -- writer ----------------------------------------------------------------------------------------
    def add(
        self, session: Any, event: Event, *, topic: str, source: PublishSource, error: BaseException, attempts: int = 1
    ) -> None:
        """Store a pending dead letter of ``event`` now (idempotent per event id); removed again if
        ``session`` (a SQLAlchemy transaction) rolls back."""
        from pymongo.errors import DuplicateKeyError

        values = dead_letter_values(event, topic=topic, source=source, error=error, attempts=attempts)
        now = self.clock()
        doc: Document = {
            "schema_version": 1,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "restored_at": None,
            "restored_by": None,
            **values,
            "event_id": uuid.UUID(str(values["event_id"])),
            "payload": json.dumps(values["payload"], default=str, ensure_ascii=False),
            "headers": json.dumps(values["headers"], default=str, ensure_ascii=False),
            "occurred_at": values["occurred_at"].isoformat() if values.get("occurred_at") else None,
            "history": json.loads(json.dumps(values["history"], default=str)),
        }
        if self.collection.find_one({"event_id": doc["event_id"]}, {"_id": 1}) is not None:
            return
        doc["_id"] = next_id(self.db, PUBLISHER_DEAD_LETTERS)
        try:
            self.collection.insert_one(doc)
        except DuplicateKeyError:  # the same event's record written meanwhile: stored once
            return
        if session is not None:
            self._remove_on_rollback(session, doc["_id"])

    def _remove_on_rollback(self, session: Any, record_id: int) -> None:
        """Delete the record if ``session``'s transaction rolls back (a Session or a Connection)."""
        from sqlalchemy import event as sa_event
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session

        if isinstance(session, Session):
            names = ("after_commit", "after_rollback")
        elif isinstance(session, Connection):
            names = ("commit", "rollback")
        else:
            return
        state = {"open": True}

        def committed(*_: Any) -> None:
            state["open"] = False

        def rolled_back(*_: Any) -> None:
            if state["open"]:
                state["open"] = False
                self.collection.delete_one({"_id": record_id, "status": DeadLetterStatus.PENDING.value})

        sa_event.listen(session, names[0], committed)
        sa_event.listen(session, names[1], rolled_back)

    def key_held(self, session: Any, key: str) -> bool:
        query = {"key": key, "status": {"$in": _OPEN_FOR_RESTORE}}
        return self.collection.find_one(query, {"_id": 1}) is not None

    # -- restore side ----------------------------------------------------------------------------------
    def due_heads(self, limit: int) -> list[tuple[int, str | None]]:
        now = self.clock()
        blocked: set[str] = set()
        heads: list[tuple[int, str | None]] = []
        fields = {"key": 1, "status": 1, "next_attempt_at": 1}
        for doc in self.collection.find({"status": {"$in": _OPEN_FOR_RESTORE}}, fields).sort("_id", 1):
            key, status = doc.get("key"), doc["status"]
            if key is not None and key in blocked:
                continue
            if status == DeadLetterStatus.PENDING.value and doc["next_attempt_at"] <= now:
                heads.append((int(doc["_id"]), key))
            if key is not None:
                blocked.add(key)
            if len(heads) >= limit:
                break
        return heads

    def due_keyless(self, limit: int) -> list[int]:
        query = {"key": None, "status": DeadLetterStatus.PENDING.value, "next_attempt_at": {"$lte": self.clock()}}
        return [int(d["_id"]) for d in self.collection.find(query, {"_id": 1}).sort("_id", 1).limit(limit)]

    @contextmanager
    def hold_key(self, key: str) -> Iterator[MongoHeldRecords | None]:
        with self._held(KeyLeases.name("publisher", key)) as held:
            if not held:
                yield None
                return
            query = {"key": key, "status": {"$in": _OPEN_FOR_RESTORE}}
            yield MongoHeldRecords(self, [_as_read(d) for d in self.collection.find(query).sort("_id", 1)])

    @contextmanager
    def hold_keyless(self, record_id: int) -> Iterator[MongoHeldRecords | None]:
        with self._held(f"publisher-record:{record_id}") as held:
            query = {"_id": record_id, "key": None, "status": DeadLetterStatus.PENDING.value}
            doc = self.collection.find_one(query) if held else None
            yield MongoHeldRecords(self, [_as_read(doc)]) if doc is not None else None

    @contextmanager
    def _held(self, name: str) -> Iterator[bool]:
        owner = self.leases.new_owner()
        taken = self.leases.try_acquire(name, owner)
        try:
            yield taken
        finally:
            if taken:
                self.leases.release([name], owner)
