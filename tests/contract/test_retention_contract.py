"""The cleanup job's store contract: ``MemoryRetention`` and ``PostgresRetention`` delete the same rows.

Rows are seeded with ages relative to now; the same :class:`~kafkaguard.maintenance.cleanup.Cleanup`
job then runs over each adapter, so a rule that drifts between SQL and the fake fails here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from sqlalchemy import Engine, text

from kafkaguard.db import columns as C
from kafkaguard.db.engine import sync_engine
from kafkaguard.maintenance.cleanup import Cleanup, CleanupSettings
from kafkaguard.stores.retention import RETENTIONS, PostgresRetention, RetentionStore
from kafkaguard.testing import MemoryRetention

DAY = timedelta(days=1)


class Harness(Protocol):
    store: RetentionStore

    def outbox_row(self, published_days_ago: float | None) -> None: ...

    def inbox_row(self, days_ago: float) -> None: ...

    def publisher_dead_letter(self, status: str, days_ago: float) -> None: ...

    def count(self, table: str) -> int: ...


class FakeHarness:
    def __init__(self) -> None:
        self.memory = MemoryRetention()
        self.store: RetentionStore = self.memory

    @staticmethod
    def _ago(days: float) -> datetime:
        return datetime.now(UTC) - days * DAY

    def outbox_row(self, published_days_ago: float | None) -> None:
        at = None if published_days_ago is None else self._ago(published_days_ago)
        self.memory.add(C.OUTBOX, published_at=at)

    def inbox_row(self, days_ago: float) -> None:
        self.memory.add(C.INBOX, processed_at=self._ago(days_ago))

    def publisher_dead_letter(self, status: str, days_ago: float) -> None:
        self.memory.add(C.PUBLISHER_DEAD_LETTERS, status=status, updated_at=self._ago(days_ago))

    def count(self, table: str) -> int:
        return len(self.memory.tables[table])


class PostgresHarness:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store: RetentionStore = PostgresRetention(engine)

    def _run(self, sql: str, **params: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def outbox_row(self, published_days_ago: float | None) -> None:
        published = "NULL" if published_days_ago is None else "now() - :age * interval '1 day'"
        self._run(
            f"INSERT INTO {C.OUTBOX} (id, aggregatetype, aggregateid, type, payload, published_at) "
            f"VALUES (:id, 'post', :key, 'post.created', '{{}}', {published})",
            id=uuid.uuid4(), key=f"k-{uuid.uuid4()}", age=published_days_ago or 0,
        )  # fmt: skip

    def inbox_row(self, days_ago: float) -> None:
        self._run(
            f"INSERT INTO {C.INBOX} (consumer_group, event_id, processed_at) "
            "VALUES ('g', :id, now() - :age * interval '1 day')",
            id=uuid.uuid4(), age=days_ago,
        )  # fmt: skip

    def publisher_dead_letter(self, status: str, days_ago: float) -> None:
        self._run(
            f"INSERT INTO {C.PUBLISHER_DEAD_LETTERS} (event_id, topic, key, type, aggregate_type, payload, "
            "occurred_at, source, status, updated_at) VALUES (:id, 't', :key, 'post.created', 'post', '{}', now(), "
            "'direct', :status, now() - :age * interval '1 day')",
            id=uuid.uuid4(), key=f"k-{uuid.uuid4()}", status=status, age=days_ago,
        )  # fmt: skip

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture(params=["fake", "postgres"])
def retention(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "fake":
        yield FakeHarness()
        return
    db = request.getfixturevalue("migrated_database")
    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        yield PostgresHarness(engine)
    finally:
        engine.dispose()


def test_only_rows_past_their_retention_go_and_open_ones_never(retention: Harness) -> None:
    for _ in range(7):
        retention.outbox_row(published_days_ago=2)  # published, past the 1-day retention
    retention.outbox_row(published_days_ago=0.5)  # published, too young
    retention.outbox_row(published_days_ago=None)  # never published: never deleted
    retention.inbox_row(days_ago=20)
    retention.inbox_row(days_ago=1)
    retention.publisher_dead_letter("restored", days_ago=40)
    retention.publisher_dead_letter("discarded", days_ago=40)
    retention.publisher_dead_letter("pending", days_ago=400)  # open: kept however old
    retention.publisher_dead_letter("failed", days_ago=400)
    retention.publisher_dead_letter("restored", days_ago=1)

    settings = CleanupSettings(outbox_retention=86_400, inbox_retention=14 * 86_400, batch_size=3)
    report = Cleanup(retention.store, settings).run()

    assert not report.skipped
    assert report.deleted[C.OUTBOX] == 7  # in batches of 3: 3 + 3 + 1
    assert report.deleted[C.INBOX] == 1
    assert report.deleted[C.PUBLISHER_DEAD_LETTERS] == 2
    assert retention.count(C.OUTBOX) == 2
    assert retention.count(C.INBOX) == 1
    assert retention.count(C.PUBLISHER_DEAD_LETTERS) == 3


def test_a_batch_deletes_at_most_its_limit(retention: Harness) -> None:
    for _ in range(5):
        retention.inbox_row(days_ago=30)
    rule = next(r for r in RETENTIONS if r.table == C.INBOX)
    assert retention.store.delete_expired(rule, age=14 * DAY, limit=2) == 2
    assert retention.count(C.INBOX) == 3


def test_a_second_cleanup_skips_while_one_holds_the_lock(retention: Harness) -> None:
    retention.inbox_row(days_ago=30)
    with retention.store.exclusive() as first:
        assert first
        report = Cleanup(retention.store, CleanupSettings()).run()
        assert report.skipped and report.deleted == {}
    assert retention.count(C.INBOX) == 1
    with retention.store.exclusive() as again:
        assert again  # released at the end of the block
