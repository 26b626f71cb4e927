"""Fuzz the consumer's apply path against the real PostgreSQL and MariaDB (issue 13, Deliver 7a;
issue 18: the same property on the second database).

Records are built directly (any key, value and header bytes) and run through
``Applier.process`` (per-event mode) or a :class:`Worker` over a :class:`MemorySource` (batch mode).
Property: every record returns an Outcome (nothing raises; PostgreSQL is up), has exactly one
durable outcome with its raw bytes intact (see ``durable.py``), every good event of a fresh key is
applied exactly once, and (batch mode) the committed offset of each partition reaches its end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from hypothesis import example, given
from sqlalchemy import Engine, text

from kafkaguard.consumer import Applier, MemorySource, Outcome, Record, Worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.policies.backoff import Exponential
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase
from tests.fuzz import app
from tests.fuzz.durable import APPLIED, CONFLICT, DUPLICATE, Db, applied_once, check, mariadb_rows
from tests.fuzz.logcheck import LogLines
from tests.fuzz.planned import ISSUE_13_MESSAGES, Planned, realise
from tests.fuzz.profile import fuzz_settings, pick
from tests.fuzz.report import FuzzReport
from tests.fuzz.strategies import Fixture, Limits, PlanItem, Poison, plans

LIMITS = Limits(max_key=pick(100_000, 1_500_000), max_value=pick(300_000, 2_000_000), max_payload=200_000)
FAST_RETRY = RetryPolicy(max_attempts=3, backoff=Exponential(base=0.01, factor=2, max_seconds=0.05, jitter=0))
TOPIC = "fuzz.apply"


@dataclass(repr=False)
class ApplyEnv(Fixture):
    engine: Engine
    conn: Db  # where the checks read (durable.py)
    group: str
    offsets: Iterator[int]  # every record of the test gets its own position

    def reset(self) -> None:
        """Forget earlier examples' outcomes (blocked keys, seen event ids): each example starts alike."""
        with self.engine.begin() as conn:
            for table in ("kafka_inbox", "kafka_listener_dead_letters", "kafkaguard_last_resort", "fuzz_effects"):
                conn.execute(text(f"DELETE FROM {table}"))

    def settings(self, **kw: Any) -> ConsumerSettings:
        return ConsumerSettings(group_id=self.group, retry=FAST_RETRY, max_payload_bytes=LIMITS.max_payload, **kw)


@pytest.fixture(params=["postgresql", "mariadb"])
def env(request: pytest.FixtureRequest) -> Iterator[ApplyEnv]:
    group = f"fuzz-{uuid.uuid4().hex[:8]}"
    if request.param == "mariadb":
        maria: TestMariaDatabase = request.getfixturevalue("migrated_mariadb_database")
        engine = sync_engine(maria.url, schema=maria.schema, pool_size=2)
        with engine.begin() as conn:
            conn.execute(text(app.MARIADB_TABLE))
        raw = maria.connect()
        try:
            yield ApplyEnv(engine, mariadb_rows(raw), group, itertools.count())
        finally:
            raw.close()
            engine.dispose()
        return
    db: TestDatabase = request.getfixturevalue("migrated_database")
    app.create_tables(db.conninfo)
    engine = sync_engine(db.server.url(), schema=db.schema, pool_size=2)
    with psycopg.connect(db.conninfo, autocommit=True) as pg:
        yield ApplyEnv(engine, pg, group, itertools.count())
    engine.dispose()


def _check_all(env: ApplyEnv, report: FuzzReport, done: list[tuple[Record, Planned, object]]) -> None:
    for record, planned, outcome in done:
        kind = check(env.conn, env.group, (record.topic, record.partition, record.offset), planned.message, outcome,
                     planned.expect)  # fmt: skip
        report.apply_outcomes[kind] += 1
        if planned.expect in (APPLIED, DUPLICATE, CONFLICT):
            assert planned.event_id is not None
            assert applied_once(env.conn, planned.event_id) == 1, f"good event {planned.event_id} not applied once"


def with_issue_13_examples(test: Any) -> Any:
    """Try each consumer input of issue 13 first, alone, on every run."""
    for message in ISSUE_13_MESSAGES:
        test = example(plan=[Poison(message)])(test)
    return test


@fuzz_settings(quick=200, full=2500)
@given(plan=plans(LIMITS, max_items=6))
@with_issue_13_examples
def test_apply_gives_every_record_one_durable_outcome(
    env: ApplyEnv, fuzz_report: FuzzReport, kafkaguard_log: LogLines, plan: list[PlanItem]
) -> None:
    env.reset()
    applier = Applier(env.engine, app.registry, env.settings())
    done: list[tuple[Record, Planned, object]] = []
    try:
        for planned in realise(plan):
            record = planned.message.record(TOPIC, 0, next(env.offsets))
            fuzz_report.apply_records += 1
            try:
                outcome = applier.process(record)
            except BaseException:
                fuzz_report.apply_crashes += 1
                raise
            done.append((record, planned, outcome))
    finally:
        applier.close()
    _check_all(env, fuzz_report, done)
    kafkaguard_log.assert_bounded()


@fuzz_settings(quick=50, full=600)
@given(plan=plans(LIMITS, max_items=12))
@example(plan=[Poison(m) for m in ISSUE_13_MESSAGES])
def test_batch_mode_gives_every_record_one_durable_outcome_and_commits_to_the_end(
    env: ApplyEnv, fuzz_report: FuzzReport, kafkaguard_log: LogLines, plan: list[PlanItem]
) -> None:
    env.reset()
    planned = realise(plan)
    # Two partitions; each ends with a good event, so "the next good event is applied" holds on both.
    planned.append(realise([], final_good=True)[0])
    partitions: list[int] = []
    for i, p in enumerate(planned):
        partitions.append(partitions[p.of] if p.of is not None else i % 2)
    records = [p.message.record(TOPIC, part, next(env.offsets)) for p, part in zip(planned, partitions, strict=True)]
    by_position = {(r.partition, r.offset): p for r, p in zip(records, planned, strict=True)}
    outcomes: dict[tuple[int, int], Outcome] = {}
    source = MemorySource(records)
    applier = Applier(env.engine, app.registry, env.settings(batch_size=8))
    ticks = itertools.count()

    def tick() -> None:
        # Every record polled once is processed in that turn; three idle turns mean nothing is left.
        if len(outcomes) == len(records) or next(ticks) > 3:
            worker.stop()

    worker = Worker(source, applier, on_outcome=lambda r, o: outcomes.__setitem__((r.partition, r.offset), o),
                    on_tick=tick)  # fmt: skip
    fuzz_report.apply_records += len(records)
    try:
        worker.run()
    except BaseException:
        fuzz_report.apply_crashes += 1
        raise
    missing = [by_position[pos].message for pos in by_position if pos not in outcomes]
    assert not missing, f"records without an outcome: {missing}"
    _check_all(env, fuzz_report, [(r, by_position[(r.partition, r.offset)], outcomes[(r.partition, r.offset)])
                                  for r in records])  # fmt: skip
    ends = {(TOPIC, p): max(r.offset for r in records if r.partition == p) + 1 for p in {r.partition for r in records}}
    assert source.committed == ends, f"committed offsets {source.committed} do not reach the ends {ends}"
    kafkaguard_log.assert_bounded()
