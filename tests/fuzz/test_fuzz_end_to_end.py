"""Fuzz a real consumer through a real broker with a raw producer (issue 13, Deliver 7c).

A plain confluent-kafka Producer sends generated messages (and ``kcat`` those whose header names
are not UTF-8, which the Python client cannot send) to a topic that a :class:`Worker` with the
real :class:`KafkaSource` consumes in a thread. After every poison message a good event of a fresh
key follows on the same partition. Property, per example: the worker stays alive; every message
gets an outcome that is durable with its raw bytes intact (``durable.py``); every good event is
applied exactly once; the group's committed offset of every partition reaches the end (no stalled
partition). The examples share one worker (a consumer group takes seconds to join), so they are not
shrunk: a failure names the message the worker could not get past.
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from hypothesis import example, given

from kafkaguard.consumer import Applier, Outcome, Record, Worker
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.fuzz import app
from tests.fuzz.durable import ANY, APPLIED, CONFLICT, DUPLICATE, applied_once, check
from tests.fuzz.logcheck import LogLines
from tests.fuzz.planned import ISSUE_13_MESSAGES, Planned, good_message, realise
from tests.fuzz.profile import fuzz_settings, pick
from tests.fuzz.report import FuzzReport
from tests.fuzz.strategies import Fixture, Good, Limits, Message, PlanItem, Poison, plans
from tests.fuzz.test_fuzz_apply import FAST_RETRY

PARTITIONS = 3
LIMITS = Limits(max_key=pick(50_000, 200_000), max_value=pick(150_000, 600_000), max_payload=100_000, nul_names=False)
OUTCOME_SECONDS = 60.0
COMMIT_SECONDS = 30.0


KCAT_ARG_LIMIT = 2048


def kcat_message(msg: Message) -> Message:
    """``msg`` as kcat can send it: arguments cannot hold NUL (names and values), a header needs a name without '='
    and a value; an empty key is sent as none; kcat sends nothing for an empty (or null) value, so that
    is sent as one space (empty and null values go through the Python producer); the command line
    bounds every argument and all of them together, so key, names and values are cut to
    :data:`KCAT_ARG_LIMIT` bytes and at most 32 headers are sent."""
    key = msg.key.replace(b"\x00", b"0")[:KCAT_ARG_LIMIT] if msg.key else None
    headers = tuple(
        (
            name.replace("=", "-").replace("\x00", "0")[: KCAT_ARG_LIMIT // 4],
            (value or b"").replace(b"\x00", b"0")[:KCAT_ARG_LIMIT],
        )
        for name, value in msg.headers
        if name
    )[:32]
    return Message(key, msg.value or b" ", headers)


@dataclass
class Sent:
    partition: int
    offset: int
    planned: Planned
    message: Message  # what was sent (a kcat message is adapted, see kcat_message)


@dataclass(repr=False)
class ConsumerHarness(Fixture):
    """One topic, one consumer group and a worker thread on them; replaced after a crash or a stall."""

    bootstrap: str
    db: TestDatabase
    topics: TopicFactory
    conn: psycopg.Connection[Any]
    batch_size: int
    producer: Producer
    admin: Consumer
    topic: str = ""
    group: str = ""
    outcomes: dict[tuple[int, int], tuple[Record, Outcome]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    worker: Worker | None = None
    thread: threading.Thread | None = None
    generation: Iterator[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        self.stop()
        self.topic = self.topics(f"e2e{next(self.generation)}", partitions=PARTITIONS)
        self.group = f"fuzz-{uuid.uuid4().hex[:8]}"
        self.outcomes, self.errors = {}, []
        settings = ConsumerSettings(
            group_id=self.group, topics=(self.topic,), retry=FAST_RETRY, max_payload_bytes=LIMITS.max_payload,
            batch_size=self.batch_size,
        )  # fmt: skip
        engine = sync_engine(self.db.server.url(), schema=self.db.schema, pool_size=2)
        applier = Applier(engine, app.registry, settings, stop=threading.Event())
        source = KafkaSource(self.bootstrap, self.group, [self.topic], overrides={"session.timeout.ms": 10000})
        worker = Worker(source, applier, on_outcome=self._outcome)
        self.worker = worker

        def run() -> None:
            try:
                worker.run()
            except BaseException as exc:
                self.errors.append(exc)
            finally:
                engine.dispose()

        self.thread = threading.Thread(target=run, name=f"fuzz-worker-{self.group}", daemon=True)
        self.thread.start()

    def _outcome(self, record: Record, outcome: Outcome) -> None:
        self.outcomes[(record.partition, record.offset)] = (record, outcome)

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        if self.worker is not None and self.thread is not None:
            self.worker.stop()
            self.thread.join(60)
        self.worker = self.thread = None

    def reset(self) -> None:
        """Forget earlier examples' outcomes (the worker is idle between examples)."""
        with self.conn.transaction():
            for table in ("kafka_inbox", "kafka_listener_dead_letters", "kafkaguard_last_resort", "fuzz_effects"):
                self.conn.execute(f"DELETE FROM {table}")

    def high(self, partition: int) -> int:
        _low, high = self.admin.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10, cached=False)
        return int(high)

    def committed(self) -> dict[int, int]:
        """The group's committed offsets, asked with a plain client that does not join the group."""
        probe = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group, "enable.auto.commit": False})
        try:
            tps = probe.committed([TopicPartition(self.topic, p) for p in range(PARTITIONS)], timeout=10)
        finally:
            probe.close()
        return {tp.partition: tp.offset for tp in tps}

    def send(self, items: list[tuple[int, Planned]]) -> list[Sent]:
        """Produce in order, each on its partition; kcat for header names the Python client cannot send."""
        sent: list[Sent] = []
        pending: list[tuple[int, Planned]] = []

        def flush() -> None:
            offsets: list[int | None] = [None] * len(pending)

            def delivered(i: int) -> Any:
                def cb(err: Any, msg: Any) -> None:
                    assert err is None, f"the broker refused a generated message: {err}"
                    offsets[i] = msg.offset()

                return cb

            for i, (partition, planned) in enumerate(pending):
                m = planned.message
                self.producer.produce(self.topic, key=m.key, value=m.value, headers=list(m.headers),
                                      partition=partition, on_delivery=delivered(i))  # fmt: skip
            assert self.producer.flush(30) == 0, "messages not delivered in 30 s"
            for (partition, planned), offset in zip(pending, offsets, strict=True):
                assert offset is not None
                sent.append(Sent(partition, offset, planned, planned.message))
            pending.clear()

        for partition, planned in items:
            if planned.message.names_are_utf8:
                pending.append((partition, planned))
                continue
            flush()
            message = kcat_message(planned.message)
            offset = self.high(partition)
            self._kcat(partition, message)
            assert self.high(partition) == offset + 1, "kcat's message did not land where expected"
            sent.append(Sent(partition, offset, Planned(message, planned.expect, planned.event_id), message))
        flush()
        return sent

    def _kcat(self, partition: int, msg: Message) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            value = Path(tmp) / "value"
            value.write_bytes(msg.value or b"")
            cmd = [b"kcat", b"-P", b"-b", self.bootstrap.encode(), b"-t", self.topic.encode(), b"-p", b"%d" % partition]
            if msg.key is not None:
                cmd += [b"-k", msg.key]
            for name, raw in msg.headers:
                cmd += [b"-H", name.encode("utf-8", "surrogateescape") + b"=" + (raw or b"")]
            cmd.append(str(value).encode())
            subprocess.run(cmd, check=True, capture_output=True, timeout=30)


@pytest.fixture(params=[1, ConsumerSettings.model_fields["batch_size"].default], ids=["tx-per-event", "default-chunks"])
def harness(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> Iterator[ConsumerHarness]:
    app.create_tables(migrated_database.conninfo)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "linger.ms": 2})
    admin = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "fuzz-watermarks"})
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        h = ConsumerHarness(kafka_bootstrap, migrated_database, topics, conn, request.param, producer, admin)
        h.start()
        try:
            yield h
        finally:
            h.stop()
            admin.close()


def _layout(plan: list[PlanItem]) -> list[tuple[int, Planned]]:
    """The plan's messages over the partitions in turn; after each poison a good event on its partition."""
    out: list[tuple[int, Planned]] = []
    turn = itertools.cycle(range(PARTITIONS))
    realised = realise(plan, final_good=False)
    partition_of: list[int] = []
    for planned in realised:
        p = partition_of[planned.of] if planned.of is not None else next(turn)
        partition_of.append(p)
        out.append((p, planned))
        if planned.expect == ANY:
            out.append((p, good_message(Good({"after": "poison"}))))
    return out


def _first_without_outcome(h: ConsumerHarness, sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if (s.partition, s.offset) not in h.outcomes]


@fuzz_settings(quick=40, full=400, shrink=False)
@given(plan=plans(LIMITS, min_items=pick(1, 10), max_items=pick(8, 40)))
@example(plan=[Poison(m) for m in ISSUE_13_MESSAGES])  # issue 13's inputs, each followed by a good event
def test_a_real_consumer_survives_every_message(
    harness: ConsumerHarness, fuzz_report: FuzzReport, kafkaguard_log: LogLines, plan: list[PlanItem]
) -> None:
    h = harness
    if not h.alive():
        h.start()
    h.reset()
    sent = h.send(_layout(plan))
    fuzz_report.messages += len(sent)
    deadline = time.monotonic() + OUTCOME_SECONDS
    while h.alive() and _first_without_outcome(h, sent) and time.monotonic() < deadline:
        time.sleep(0.05)
    missing = _first_without_outcome(h, sent)
    if missing or not h.alive():
        died = not h.alive()
        error = h.errors[0] if h.errors else None
        if died:
            fuzz_report.consumer_crashes += 1
        else:
            fuzz_report.stalled_partitions += len({s.partition for s in missing})
        h.start()  # a fresh topic and group for the next examples; this one stays poisoned
        stuck = [(s.partition, s.offset, s.message) for s in missing[:3]]
        what = f"the worker died ({error!r})" if died else f"no outcome after {OUTCOME_SECONDS:.0f} s"
        raise AssertionError(f"{what}; first messages without an outcome: {stuck}") from error
    for s in sent:
        outcome = h.outcomes[(s.partition, s.offset)][1]
        kind = check(h.conn, h.group, (h.topic, s.partition, s.offset), s.message, outcome, s.planned.expect)
        fuzz_report.consumer_outcomes[kind] += 1
        if s.planned.expect in (APPLIED, DUPLICATE, CONFLICT):
            assert s.planned.event_id is not None
            assert applied_once(h.conn, s.planned.event_id) == 1, f"good event {s.planned.event_id} not applied once"
    ends = {p: h.high(p) for p in range(PARTITIONS)}
    deadline = time.monotonic() + COMMIT_SECONDS
    committed = h.committed()
    while any(committed.get(p, -1) < end for p, end in ends.items() if end > 0) and time.monotonic() < deadline:
        time.sleep(0.1)
        committed = h.committed()
    behind = {p: (committed.get(p), end) for p, end in ends.items() if end > 0 and committed.get(p, -1) < end}
    if behind:
        fuzz_report.stalled_partitions += len(behind)
        h.start()
        raise AssertionError(f"committed offsets behind the end (committed, end): {behind}")
    assert h.alive(), "the worker died"
    kafkaguard_log.assert_bounded()
