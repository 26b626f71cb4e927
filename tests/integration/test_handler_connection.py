"""``ctx.connection``: a per-event handler writing through the driver's own connection (no
SQLAlchemy per statement) keeps every guarantee of ``ctx.session`` on both databases: in a chunk of
the default settings, a failing event's own writes roll back with it (its savepoint) while the
others commit with their inbox rows, and a redelivered event writes nothing."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from kafkaguard import ConsumerSettings, Event, HandlerContext, HandlerRegistry, Outcome
from kafkaguard.consumer import Applier, MemorySource, Record, Worker
from kafkaguard.db.engine import sync_engine
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase

registry = HandlerRegistry()


@registry.handler("raw.applied")
def apply_raw(event: Event, ctx: HandlerContext[Any]) -> None:
    with ctx.connection.cursor() as cur:  # psycopg or PyMySQL: both take %s
        cur.execute("INSERT INTO raw_effects (event_id, n) VALUES (%s, %s)", (str(event.event_id), event.payload["n"]))
    if event.payload.get("fail"):
        raise ValueError("asked to fail after writing")  # permanent: dead-lettered at once


@pytest.fixture
def engine(store_database: TestDatabase | TestMariaDatabase) -> Iterator[Engine]:
    url = store_database.url if isinstance(store_database, TestMariaDatabase) else store_database.server.url()
    engine = sync_engine(url, schema=store_database.schema)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE raw_effects (event_id CHAR(36) NOT NULL, n INT NOT NULL)"))
    yield engine
    engine.dispose()


def _records(events: list[Event], offsets: Iterator[int]) -> list[Record]:
    return [Record("raw", 0, next(offsets), e.key.encode(), e.payload_bytes(), e.kafka_headers()) for e in events]


def _run(engine: Engine, records: list[Record]) -> dict[int, Outcome]:
    settings = ConsumerSettings(group_id="raw", retry=RetryPolicy(max_attempts=1, backoff=Fixed(seconds=0)))
    outcomes: dict[int, Outcome] = {}
    applier = Applier(engine, registry, settings)
    ticks = itertools.count()

    def tick() -> None:
        if len(outcomes) == len(records) or next(ticks) > 3:
            worker.stop()

    worker = Worker(MemorySource(records), applier, on_outcome=lambda r, o: outcomes.__setitem__(r.offset, o),
                    on_tick=tick)  # fmt: skip
    worker.run()
    return outcomes


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar_one()


def test_a_chunk_on_the_driver_connection_commits_per_event_outcomes(engine: Engine) -> None:
    assert ConsumerSettings().batch_size > 1  # the default settings run chunks
    events = [Event(type="raw.applied", key=f"k{i % 3}", payload={"n": i, "fail": i == 4}) for i in range(10)]
    offsets = itertools.count()
    first = _run(engine, _records(events, offsets))
    # Event 4 fails after writing: dead-lettered alone; event 7 (its key, k1) is parked behind it.
    assert first == {i: Outcome.DEAD_LETTERED if i == 4 else Outcome.PARKED if i == 7 else Outcome.APPLIED
                     for i in range(10)}  # fmt: skip
    assert _scalar(engine, "SELECT count(*) FROM raw_effects") == 8
    assert _scalar(engine, "SELECT count(*) FROM raw_effects WHERE n IN (4, 7)") == 0  # its write rolled back
    assert _scalar(engine, "SELECT count(*) FROM kafka_inbox") == 8
    applied = [i for i in range(10) if first[i] is Outcome.APPLIED]

    again = _run(engine, _records([events[i] for i in applied], offsets))
    assert set(again.values()) == {Outcome.DUPLICATE}  # redelivered: nothing written twice
    assert _scalar(engine, "SELECT count(*) FROM raw_effects") == 8
