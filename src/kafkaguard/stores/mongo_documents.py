"""What the MongoDB stores share: collection names, the client, id counters and key leases.

A document store without multi-document transactions gives none of PostgreSQL's row locks or
rollbacks, so the two things the consumer needs from them are built from single-document atomic
operations, which every MongoDB-wire server (MongoDB, FerretDB) keeps:

- **ids** that grow in insert order: one counter document per collection, ``$inc``-ed;
- **key locks**: a lease document per key (``_id`` the group and key), taken by an upsert that
  matches only when the lease is free, expired or already ours, and deleted by its owner. A
  process killed while holding one delays that key by at most the lease (30 s by default).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kafkaguard.errors import ConfigurationError, StoreUnavailableError

INBOX = "kafka_inbox"
LISTENER_DEAD_LETTERS = "kafka_listener_dead_letters"
PUBLISHER_DEAD_LETTERS = "kafka_publisher_dead_letters"
LAST_RESORT = "kafkaguard_last_resort"
COUNTERS = "kafkaguard_counters"
KEY_LOCKS = "kafkaguard_key_locks"

SERVER_SELECTION_MS = 5000
"""How long a call waits for the server before it fails as an outage (pymongo's default is 30 s)."""

Document = dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def connect(url: str) -> Any:
    """The database of ``url`` (``mongodb://host:port/<database>``): a pymongo ``Database`` with
    UUIDs stored in the standard representation and aware datetimes. Needs the ``mongo`` extra."""
    try:
        import pymongo
        from pymongo.errors import ConfigurationError as PyMongoConfigurationError
        from pymongo.errors import InvalidURI
        from pymongo.uri_parser import parse_uri
    except ImportError as exc:  # pragma: no cover - the extra is part of dev
        raise ConfigurationError("a mongodb:// URL needs pymongo: pip install 'kafkaguard[mongo]'") from exc
    try:
        name = parse_uri(url).get("database")
    except (InvalidURI, PyMongoConfigurationError, ValueError) as exc:  # say which setting is wrong
        raise ConfigurationError(f"not a usable MongoDB URL: {exc}") from None
    if not name:
        raise ConfigurationError("a mongodb:// URL needs its database: mongodb://host:port/<database>")
    try:
        client: Any = pymongo.MongoClient(
            url, uuidRepresentation="standard", tz_aware=True, serverSelectionTimeoutMS=SERVER_SELECTION_MS
        )
    except PyMongoConfigurationError as exc:  # an unknown or bad option: pymongo's message names it, not the URL
        raise ConfigurationError(f"not a usable MongoDB URL: {exc}") from None
    return client[name]


def require_answer(db: Any) -> None:
    """Raise :class:`StoreUnavailableError` in one line (server address and database, never the
    URL's credentials) unless ``db``'s server answers a ``ping`` within the selection timeout."""
    from pymongo.errors import ConnectionFailure

    try:
        db.client.admin.command("ping")
    except ConnectionFailure as exc:
        servers = sorted(db.client.topology_description.server_descriptions())
        nodes = ", ".join(f"{host}:{port}" for host, port in servers)
        raise StoreUnavailableError(
            f"the document store {nodes or '(no address)'}/{db.name} does not answer within "
            f"{SERVER_SELECTION_MS / 1000:.0f} s ({type(exc).__name__}); is it running? "
            "(the dev one: `kafkaguard dev up --mongo`)"
        ) from None


def is_mongo_url(url: str | None) -> bool:
    """Whether ``url`` names a MongoDB-wire server (``mongodb://`` or ``mongodb+srv://``)."""
    return bool(url) and str(url).split(":", 1)[0] in ("mongodb", "mongodb+srv")


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or what caused it says the server could not be reached (not a refused write)."""
    from pymongo.errors import ConnectionFailure

    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionFailure):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def next_id(db: Any, collection: str) -> int:
    """The next id of ``collection``: 1, 2, 3... in the order callers ask (one atomic ``$inc``)."""
    from pymongo import ReturnDocument
    from pymongo.errors import DuplicateKeyError

    for _ in range(3):  # two first upserts at once: one wins, the other retries as an update
        try:
            doc = db[COUNTERS].find_one_and_update(
                {"_id": collection}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
            return int(doc["n"])
        except DuplicateKeyError:
            continue
    raise RuntimeError(f"could not allocate an id for {collection}")  # pragma: no cover


class KeyLeases:
    """Key locks as lease documents in ``kafkaguard_key_locks`` (see the module docstring).

    ``lease``: how long a lock lasts without its owner (a killed process); ``wait``: how long
    :meth:`acquire` waits for a held key before it raises :class:`TimeoutError`.
    """

    def __init__(
        self, db: Any, *, lease: float = 30.0, wait: float = 60.0, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.lease = lease
        self.wait = wait
        self.clock = clock

    @staticmethod
    def name(scope: str, key: str) -> str:
        return f"{len(scope)}:{scope}:{key}"  # the length first: no two (scope, key) pairs collide

    def acquire(self, names: Sequence[str], owner: str) -> None:
        """Hold every lease of ``names`` for ``owner`` (in the given order; pass them sorted)."""
        for name in names:
            deadline = time.monotonic() + self.wait
            pause = 0.005
            while not self.try_acquire(name, owner):  # held by another owner whose lease has not run out
                if time.monotonic() > deadline:
                    raise TimeoutError(f"key lock {name!r} still held after {self.wait:.0f} s")
                time.sleep(pause)  # another process's lease: polled with a growing pause, up to the deadline
                pause = min(pause * 2, 0.2)

    def try_acquire(self, name: str, owner: str) -> bool:
        """Take the lease of ``name`` for ``owner`` if it is free or expired; False if another holds it."""
        from pymongo.errors import DuplicateKeyError

        now = self.clock()
        free = {"_id": name, "$or": [{"owner": owner}, {"until": {"$lt": now}}]}
        try:
            until = now + timedelta(seconds=self.lease)
            self.db[KEY_LOCKS].update_one(free, {"$set": {"owner": owner, "until": until}}, upsert=True)
        except DuplicateKeyError:
            return False
        return True

    def release(self, names: Sequence[str], owner: str) -> None:
        """Give back ``owner``'s leases of ``names`` (a lease taken over after expiry is left alone)."""
        if names:
            self.db[KEY_LOCKS].delete_many({"_id": {"$in": list(names)}, "owner": owner})

    @staticmethod
    def new_owner() -> str:
        return uuid.uuid4().hex
