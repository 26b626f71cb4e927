"""The consumer store (:class:`~kafkaguard.stores.inbox.ConsumerStore`) and the listener dead-letter
reads on a MongoDB-wire server (MongoDB, FerretDB), for services whose data lives in documents.

What changes without multi-document transactions, and what is kept:

- **kafkaguard's own writes are deferred to the end of the unit of work** and then written in this
  order: dead letters, last-resort records, restore marks, and the inbox entries last. A unit that
  raises writes none of them; a savepoint that raises drops only its own.
- **The handler's writes are not undone.** ``ctx.session`` is the pymongo ``Database``; what a
  handler writes is written at once. A handler that fails, or a process killed between the
  handler and the inbox entry, leaves the handler's writes in place and the event is delivered
  again (the inbox entry is written after them, never before). So effects are exactly-once when
  the handler's writes are idempotent per event: an upsert keyed by the event id, as dailyfeed's
  ``member_activities`` keyed by ``messageKey``. A non-idempotent handler (``$inc`` on a counter)
  gets at-least-once.
- **Per-key order and parking hold as on the SQL stores**: the key lock is a lease document
  (:class:`~kafkaguard.stores.mongo_documents.KeyLeases`), taken before the inbox and dead-letter
  look-ups and held until the unit's writes are done, so a consumer and the restore job never
  apply one key at once, and a key with an open dead letter parks its later events.
- A dead letter's position (group, topic, partition, offset) is stored once (a unique index).
- Header names are kept as ``{"name": ..., "value": ...}`` elements, never as field names, so a
  name with ``.``, ``$`` or any other character is stored as it came (and no nested arrays, which
  FerretDB refuses).

Indexes are created by :meth:`MongoConsumerStore.ensure_indexes` (idempotent): the MongoDB form of
``kafkaguard db upgrade``.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

from kafkaguard.db.columns import OPEN_STATUSES, DeadLetterStatus
from kafkaguard.stores.inbox import (
    NEW_EVENT,
    AsyncConsumerTx,
    ConsumerStore,
    ConsumerTx,
    EventStart,
    Prior,
    SyncTxAsAsync,
)
from kafkaguard.stores.listener_dead_letters import ListenerDeadLetter, ListenerDeadLetters
from kafkaguard.stores.mongo_documents import (
    INBOX,
    LAST_RESORT,
    LISTENER_DEAD_LETTERS,
    Document,
    KeyLeases,
    connect,
    is_connection_failure,
    next_id,
    require_answer,
    utcnow,
)
from kafkaguard.stores.restore_decision import RestoreDecision

_T = TypeVar("_T")
BSON_LIMIT = 16 * 1024 * 1024 - 64 * 1024
"""Largest dead letter accepted (MongoDB's 16 MiB document limit, less room for the fields added)."""


def inbox_id(group: str, event_id: uuid.UUID) -> str:
    return f"{event_id}|{group}"  # the UUID's fixed 36 characters first: unambiguous for any group


def as_record(doc: Document) -> ListenerDeadLetter:
    """A stored dead-letter document as the :class:`ListenerDeadLetter` the restore job reads."""
    return ListenerDeadLetter(
        id=int(doc["_id"]),
        consumer_group=doc["consumer_group"],
        topic=doc["topic"],
        partition=int(doc["partition"]),
        offset=int(doc["offset"]),
        key=doc.get("key"),
        raw_key=_bytes(doc.get("raw_key")),
        raw_value=_bytes(doc.get("raw_value")),
        raw_headers=_bytes(doc.get("raw_headers")),
        headers={h["name"]: h["value"] for h in doc.get("headers") or []},
        type=doc.get("type"),
        status=doc["status"],
        attempts=int(doc["attempts"]),
    )


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _open(group: str | None = None, **fields: Any) -> Document:
    query: Document = {"status": {"$in": list(OPEN_STATUSES)}, **fields}
    if group is not None:
        query["consumer_group"] = group
    return query


class MongoListenerDeadLetters:
    """:class:`~kafkaguard.stores.listener_dead_letters.ListenerDeadLetters` over the
    ``kafka_listener_dead_letters`` collection (the restore job's and the operator's reads)."""

    def __init__(self, db: Any, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock

    @property
    def collection(self) -> Any:
        return self.db[LISTENER_DEAD_LETTERS]

    def due_keys(self, *, limit: int = 100, group: str | None = None) -> list[tuple[str, str]]:
        heads: dict[tuple[str, str], Document] = {}
        query = _open(group, key={"$ne": None})
        fields = {"consumer_group": 1, "key": 1, "status": 1, "next_attempt_at": 1}
        for doc in self.collection.find(query, fields).sort("_id", 1):
            heads.setdefault((doc["consumer_group"], doc["key"]), doc)
        now = self.clock()
        due = [
            (gk, head["_id"])
            for gk, head in heads.items()
            if head["status"] == DeadLetterStatus.PENDING.value and head["next_attempt_at"] <= now
        ]
        return [gk for gk, _ in sorted(due, key=lambda d: d[1])][:limit]

    def groups_with_open_records(self, *, limit: int = 20) -> list[str]:
        return sorted(str(g) for g in self.collection.distinct("consumer_group", _open()))[:limit]

    def open_types_by_key(self, group: str, keys: Sequence[str]) -> dict[str, set[str | None]]:
        types: dict[str, set[str | None]] = {}
        for doc in self.collection.find(_open(group, key={"$in": list(keys)}), {"key": 1, "type": 1}):
            types.setdefault(doc["key"], set()).add(doc.get("type"))
        return types

    def get(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        doc = self.collection.find_one({"_id": dead_letter_id})
        return as_record(doc) if doc is not None else None


class MongoConsumerStore:
    """The consumer's and the listener restore job's store on a MongoDB-wire database (see the
    module docstring for what it keeps without transactions). ``db`` is a pymongo ``Database``
    (:meth:`from_url` makes one); ``lease`` the key locks' lease in seconds."""

    rolls_back_handler_writes = False
    """A unit that fails leaves the handler's writes in place: the worker applies one event per unit
    here (chunk mode's retry of a rolled-back chunk would run handlers twice)."""

    def __init__(self, db: Any, *, lease: float = 30.0, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.clock = clock
        self.leases = KeyLeases(db, lease=lease, wait=2 * lease, clock=clock)
        self.dead_letters: ListenerDeadLetters = MongoListenerDeadLetters(db, clock=clock)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MongoConsumerStore:
        """The store of ``mongodb://host:port/<database>``, its indexes ensured; raises
        :class:`~kafkaguard.errors.StoreUnavailableError` if the server does not answer."""
        store = cls(connect(url), **options)
        require_answer(store.db)  # one line naming the server, not pymongo's topology dump
        store.ensure_indexes()
        return store

    def ensure_indexes(self) -> None:
        """Create the indexes the guarantees rest on (idempotent)."""
        dead_letters = self.db[LISTENER_DEAD_LETTERS]
        position = [("consumer_group", 1), ("topic", 1), ("partition", 1), ("offset", 1)]
        dead_letters.create_index(position, unique=True, name="ux_listener_dl_position")
        dead_letters.create_index([("consumer_group", 1), ("key", 1), ("status", 1)], name="ix_listener_dl_key")
        dead_letters.create_index([("status", 1), ("next_attempt_at", 1)], name="ix_listener_dl_due")

    @contextmanager
    def transaction(self) -> Iterator[ConsumerTx]:
        tx = MongoConsumerTx(self)
        try:
            yield tx
        except BaseException:
            tx.rollback()
            raise
        else:
            tx.commit()

    @asynccontextmanager
    async def async_transaction(self) -> AsyncIterator[AsyncConsumerTx]:
        # pymongo is synchronous: an ``async def`` handler gets the same Database; its calls block
        # the event loop while they run (sync handlers are the better fit on this store).
        with self.transaction() as tx:
            yield SyncTxAsAsync(tx)

    def run_async(self, work: Callable[[ConsumerStore], Awaitable[_T]]) -> _T:
        async def run() -> _T:
            return await work(self)

        return asyncio.run(run())

    def store_alive(self) -> bool:
        from pymongo.errors import PyMongoError

        try:
            self.db.command("ping")
        except PyMongoError:  # any failure to answer is "not alive"; the caller pauses and retries
            return False
        return True

    def is_connection_error(self, exc: BaseException) -> bool:
        return is_connection_failure(exc)


class MongoConsumerTx:
    """One unit of work of :class:`MongoConsumerStore`: leases held, kafkaguard's writes staged."""

    def __init__(self, store: MongoConsumerStore) -> None:
        self.store = store
        self.db = store.db
        self.session: Any = store.db
        self._owner = store.leases.new_owner()
        self._held: list[str] = []
        self._inbox: dict[str, Document] = {}
        self._dead_letters: dict[int, Document] = {}
        self._last_resort: list[Document] = []
        self._marks: list[tuple[int, Document, Document]] = []

    # -- ends ---------------------------------------------------------------------------------------
    def commit(self) -> None:
        from pymongo.errors import BulkWriteError

        try:
            if self._dead_letters:
                self._insert_new(LISTENER_DEAD_LETTERS, list(self._dead_letters.values()), BulkWriteError)
            if self._last_resort:
                self.db[LAST_RESORT].insert_many(self._last_resort)
            for dead_letter_id, values, entry in self._marks:
                self.db[LISTENER_DEAD_LETTERS].update_one(
                    {"_id": dead_letter_id}, {"$set": values, "$push": {"history": entry}}
                )
            if self._inbox:  # last: an entry says the handler's writes are done
                self._insert_new(INBOX, list(self._inbox.values()), BulkWriteError)
        finally:
            self._end()

    def _insert_new(self, collection: str, docs: list[Document], bulk_error: type[Exception]) -> None:
        """Insert ``docs``; one whose ``_id`` or position is stored already (a redelivery) is skipped."""
        try:
            self.db[collection].insert_many(docs, ordered=False)
        except bulk_error as exc:
            errors = getattr(exc, "details", {}).get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors) or not errors:
                raise

    def rollback(self) -> None:
        self._end()

    def _end(self) -> None:
        self._inbox.clear()
        self._dead_letters.clear()
        self._last_resort.clear()
        self._marks.clear()
        held, self._held = self._held, []
        try:
            self.store.leases.release(held, self._owner)
        except Exception:  # an unreachable server: the leases run out on their own
            if not held:
                raise

    # -- ConsumerTx --------------------------------------------------------------------------------
    def lock_key(self, group: str, key: str) -> None:
        self.lock_keys(group, [key])

    def lock_keys(self, group: str, keys: Sequence[str]) -> None:
        names = [n for n in (KeyLeases.name(group, k) for k in keys) if n not in self._held]
        for name in names:  # one at a time: each is released at the end even if a later one times out
            self.store.leases.acquire([name], self._owner)
            self._held.append(name)

    def prior(self, group: str, event_id: uuid.UUID) -> Prior | None:
        ident = inbox_id(group, event_id)
        doc = self._inbox.get(ident) or self.db[INBOX].find_one({"_id": ident})
        if doc is None:
            return None
        return Prior(_bytes(doc.get("content_hash")), doc.get("topic"), doc.get("partition"), doc.get("offset"))

    def hashes(self, group: str, event_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes | None]:
        by_ident = {inbox_id(group, i): i for i in event_ids}
        found: dict[uuid.UUID, bytes | None] = {}
        for doc in self.db[INBOX].find({"_id": {"$in": list(by_ident)}}, {"content_hash": 1}):
            found[by_ident[doc["_id"]]] = _bytes(doc.get("content_hash"))
        for ident, doc in self._inbox.items():
            if ident in by_ident:
                found[by_ident[ident]] = _bytes(doc.get("content_hash"))
        return found

    def is_blocked(self, group: str, key: str) -> bool:
        return self.any_blocked(group, [key])

    def any_blocked(self, group: str, keys: Sequence[str]) -> bool:
        wanted = set(keys)
        staged = any(
            d["consumer_group"] == group and d["key"] in wanted and d["status"] in OPEN_STATUSES
            for d in self._dead_letters.values()
        )
        query = _open(group, key={"$in": list(wanted)})
        return staged or self.db[LISTENER_DEAD_LETTERS].find_one(query, {"_id": 1}) is not None

    def begin_event(self, group: str, key: str, row: dict[str, Any] | None, *, check_blocked: bool) -> EventStart:
        self.lock_key(group, key)
        if row is not None:
            prior = self.prior(group, row["event_id"])
            if prior is not None:
                return EventStart(prior=prior)
        if check_blocked and self.is_blocked(group, key):
            return EventStart(blocked=True)
        if row is not None:
            self.insert_inbox({**row, "consumer_group": group, "key": key})
        return NEW_EVENT

    def insert_inbox(self, row: dict[str, Any]) -> None:
        self.insert_inbox_batch(row["consumer_group"], [row])

    def insert_inbox_batch(self, group: str, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        idents = {inbox_id(group, r["event_id"]): r for r in rows}
        stored = {d["_id"] for d in self.db[INBOX].find({"_id": {"$in": list(idents)}}, {"_id": 1})}
        new: set[uuid.UUID] = set()
        for ident, row in idents.items():
            if ident in stored or ident in self._inbox:
                continue
            doc = {**row, "_id": ident, "consumer_group": group, "event_id": row["event_id"]}
            self._inbox[ident] = {**doc, "processed_at": self.store.clock()}
            new.add(row["event_id"])
        return new

    def insert_dead_letter(self, row: dict[str, Any]) -> int | None:
        position = {k: row[k] for k in ("consumer_group", "topic", "partition", "offset")}
        staged = any(all(d[k] == v for k, v in position.items()) for d in self._dead_letters.values())
        if staged or self.db[LISTENER_DEAD_LETTERS].find_one(position, {"_id": 1}) is not None:
            return None
        now = self.store.clock()
        doc: Document = {
            "next_attempt_at": now,
            "restored_at": None,
            "restored_by": None,
            **copy.deepcopy(row),
            "headers": [{"name": n, "value": v} for n, v in (row.get("headers") or {}).items()],
            "created_at": now,
            "updated_at": now,
        }
        # Refused here, not at commit: the consumer then keeps the record as a last-resort row.
        _check_size(doc, self.db.codec_options)
        new_id = next_id(self.db, LISTENER_DEAD_LETTERS)
        self._dead_letters[new_id] = {**doc, "_id": new_id}
        return new_id

    def insert_last_resort(self, row: dict[str, Any]) -> None:
        self._last_resort.append({**row, "_id": next_id(self.db, LAST_RESORT), "created_at": self.store.clock()})

    def open_records(self, group: str, key: str) -> list[ListenerDeadLetter]:
        docs = {d["_id"]: d for d in self.db[LISTENER_DEAD_LETTERS].find(_open(group, key=key))}
        for new_id, d in self._dead_letters.items():
            if d["consumer_group"] == group and d["key"] == key:
                docs[new_id] = d
        seen = (self._as_marked(docs[i]) for i in sorted(docs))
        return [as_record(d) for d in seen if d["status"] in OPEN_STATUSES]

    def open_record(self, dead_letter_id: int) -> list[ListenerDeadLetter]:
        doc = self._stored(dead_letter_id)
        if doc is not None and doc.get("key") is not None:
            self.lock_key(doc["consumer_group"], doc["key"])  # held as the SQL stores hold the row
            doc = self._stored(dead_letter_id)
        return [as_record(doc)] if doc is not None and doc["status"] in OPEN_STATUSES else []

    def record(self, dead_letter_id: int) -> ListenerDeadLetter | None:
        doc = self._stored(dead_letter_id)
        return as_record(doc) if doc is not None else None

    def _stored(self, dead_letter_id: int) -> Document | None:
        """Record ``dead_letter_id`` as this unit sees it: stored or staged, its staged marks applied."""
        doc = self._dead_letters.get(dead_letter_id) or self.db[LISTENER_DEAD_LETTERS].find_one({"_id": dead_letter_id})
        return self._as_marked(doc) if doc is not None else None

    def _as_marked(self, doc: Document) -> Document:
        marks = [values for i, values, _ in self._marks if i == doc["_id"]]
        return {**doc, **{k: v for values in marks for k, v in values.items()}} if marks else doc

    def mark(self, dead_letter_id: int, change: RestoreDecision) -> None:
        self._marks.append((dead_letter_id, change.listener_columns(self.store.clock()), change.history_entry))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        inbox, dead_letters = dict(self._inbox), dict(self._dead_letters)
        last_resort, marks = len(self._last_resort), len(self._marks)
        try:
            yield
        except BaseException:
            self._inbox, self._dead_letters = inbox, dead_letters
            del self._last_resort[last_resort:]
            del self._marks[marks:]
            raise


class DocumentTooLargeError(ValueError):
    """A dead letter larger than a document may be: refused for its data, not an outage."""


def _check_size(doc: Document, codec_options: Any) -> None:
    import bson

    size = len(bson.encode(doc, codec_options=codec_options))
    if size > BSON_LIMIT:
        raise DocumentTooLargeError(f"dead letter of {size} bytes exceeds the document limit of {BSON_LIMIT}")
