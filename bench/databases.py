"""Part 6: the relay and the consumer on MariaDB beside PostgreSQL, in the same run (issue 18).

The same work on both databases, each a dedicated server on this machine, with kafkaguard's default
settings and the same broker:

- **relay**: one ``kafkaguard relay`` draining a backlog of ``rows`` outbox rows (200-byte payloads,
  1,000 keys) inserted in one transaction; timed from that commit to an empty outbox. The relay is
  started first and proven running by a probe row it publishes, so its start-up is not timed.
  PostgreSQL wakes it by NOTIFY; MariaDB has none, so there it finds the backlog by polling.
- **consumer**: kafkaguard's ``Worker`` (``Worker.from_settings``, default settings, a per-event
  handler inserting one row) applying ``events`` events through the inbox; timed from the first
  record in hand to the last event's effect committed.

The variants run interleaved (PostgreSQL, MariaDB, PostgreSQL, MariaDB …), median of the rounds.
Everything goes through kafkaguard's public entry points and one URL per database: what differs
between the two columns is only the store adapter the URL chose.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Engine, MetaData, String, Table, func, insert, select, text

from bench.common import REPORT_DIR, Report, Stack, median, new_topic, start_relay, stop, wait_until
from bench.consumer_throughput import EVENT_TYPE, FILLER, _TimedSource, produce_events
from kafkaguard import Event, create_engine
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.consumer.worker import Worker
from kafkaguard.db import migrate
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing import stacks

DIALECTS = ("postgresql", "mariadb")


@dataclass(frozen=True)
class Namespace:
    """A migrated schema (PostgreSQL) or database (MariaDB) and its URL."""

    dialect: str
    url: str
    schema: str

    def engine(self) -> Engine:
        return create_engine(url=self.url, schema=self.schema)


def _namespace(dialect: str, stack: Stack, maria: MariaDbServer, prefix: str) -> Namespace:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    if dialect == "mariadb":
        url = maria.url()
        root = create_engine(url=url)
        with root.begin() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        root.dispose()
    else:
        url = stack.server.url()
    migrate.upgrade(url, schema=name)
    return Namespace(dialect, url, name)


def _outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one())


def _write_backlog(engine: Engine, aggregate: str, rows: int, chunk: int = 5_000) -> None:
    """``rows`` outbox rows in one transaction, through kafkaguard's own outbox insert."""
    events = (
        Event(type=f"{aggregate}.changed", key=f"key-{i % 1000:04d}", aggregate_type=aggregate,
              payload={"n": 1_000_000 + i, "data": FILLER})
        for i in range(rows)
    )  # fmt: skip
    with engine.begin() as conn:
        batch: list[Event] = []
        for event in events:
            batch.append(event)
            if len(batch) == chunk:
                add_events(conn, batch)
                batch = []
        if batch:
            add_events(conn, batch)


def relay_rate(ns: Namespace, stack: Stack, rows: int, logs: Path) -> float:
    """Events/s of one ``kafkaguard relay`` with default settings draining ``rows`` outbox rows."""
    aggregate = f"m{uuid.uuid4().hex[:8]}"
    new_topic(stack, aggregate)
    engine = ns.engine()
    log = logs / f"relay-{ns.dialect}-{ns.schema}.log"
    proc = start_relay(ns, stack.bootstrap, log, name=f"bench-{ns.dialect}", KAFKAGUARD_DB_SCHEMA=ns.schema)  # type: ignore[arg-type]
    try:
        _write_backlog(engine, aggregate, 1)  # the probe: gone once the relay runs and owns its shards
        wait_until(lambda: _outbox_rows(engine) == 0, 120, f"the relay on {ns.dialect} to publish its probe")
        _write_backlog(engine, aggregate, rows)
        committed = time.perf_counter()
        wait_until(lambda: _outbox_rows(engine) == 0, 600, f"the relay on {ns.dialect} to drain the outbox", 0.05)
        elapsed = time.perf_counter() - committed
        if proc.poll() is not None:
            raise RuntimeError(f"the relay on {ns.dialect} exited with {proc.returncode}; see {logs}")
    finally:
        stop(proc)
        engine.dispose()
    return rows / elapsed


def consumer_rate(ns: Namespace, bootstrap: str, topic: str, count: int) -> float:
    """Events/s of kafkaguard's default consumer applying ``count`` events into a table of its own."""
    engine = ns.engine()
    table = Table(f"kg_{uuid.uuid4().hex[:6]}", MetaData(), Column("event_id", String(36), primary_key=True),
                  Column("key", String(255), nullable=False), Column("payload", JSON, nullable=False))  # fmt: skip
    table.create(engine)
    statement = insert(table)
    registry = HandlerRegistry()

    def apply_event(event: Event, ctx: HandlerContext[Any]) -> None:
        ctx.session.execute(statement, {"event_id": str(event.event_id), "key": event.key, "payload": event.payload})

    registry.register(EVENT_TYPE, apply_event)
    group = f"kgdb-{uuid.uuid4().hex[:8]}"
    consumer = ConsumerSettings(group_id=group, topics=(topic,))
    settings = KafkaguardSettings(bootstrap_servers=bootstrap, database_url=ns.url, db_schema=ns.schema,
                                  consumer=consumer)  # fmt: skip
    source = _TimedSource(KafkaSource(bootstrap, group, [topic], overrides=settings.kafka_consumer_overrides(),
                                      instance_id=consumer.instance_id))  # fmt: skip
    seen, last = [0], [0.0]

    def on_outcome(_record: Record, _outcome: Any) -> None:
        seen[0] += 1
        if seen[0] >= count:
            last[0] = time.perf_counter()
            worker.stop()

    worker = Worker.from_settings(settings, registry, on_outcome=on_outcome, source=source)  # type: ignore[arg-type]
    try:
        worker.run()
    finally:
        store_engine = getattr(worker.applier.store, "engine", None)
        if isinstance(store_engine, Engine):
            store_engine.dispose()
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(table)).scalar_one()
    engine.dispose()
    if stored != count:
        raise RuntimeError(f"the consumer on {ns.dialect} stored {stored} of {count}")
    assert source.first is not None
    return count / (last[0] - source.first)


@contextmanager
def _mariadb() -> Iterator[MariaDbServer]:
    with stacks.mariadb_server() as server:
        yield server


def run(stack: Stack, *, rows: int, events: int, rounds: int, profile: str) -> Report:
    logs = REPORT_DIR / "logs"
    samples: dict[str, list[float]] = {f"{part}_{d}": [] for part in ("relay", "consumer") for d in DIALECTS}
    with _mariadb() as maria:
        version = _server_version(maria)
        relay_ns = {d: _namespace(d, stack, maria, "dr") for d in DIALECTS}
        consumer_ns = {d: _namespace(d, stack, maria, "dc") for d in DIALECTS}
        topic = new_topic(stack, f"dc{uuid.uuid4().hex[:8]}")
        produce_events(stack.bootstrap, topic, events)
        variants: dict[str, Callable[[], float]] = {}
        for d in DIALECTS:
            variants[f"relay_{d}"] = lambda d=d: relay_rate(relay_ns[d], stack, rows, logs)  # type: ignore[misc]
            variants[f"consumer_{d}"] = lambda d=d: consumer_rate(consumer_ns[d], stack.bootstrap, topic, events)  # type: ignore[misc]
        for _ in range(rounds):
            for key, fn in variants.items():
                samples[key].append(fn())
    med = {k: median(v) for k, v in samples.items()}
    report = Report(
        "databases",
        f"The relay and the consumer on PostgreSQL and MariaDB — relay: {rows:,} outbox rows of 200 B; "
        f"consumer: {events:,} events, default settings (median of {rounds} interleaved rounds)",
        ["component", "PostgreSQL 15 (events/s)", f"MariaDB {version} (events/s)", "MariaDB ÷ PostgreSQL"],
    )
    for part, label in (("relay", "kafkaguard relay, 1 instance"), ("consumer", "kafkaguard consumer, default")):
        pg, maria_rate = med[f"{part}_postgresql"], med[f"{part}_mariadb"]
        report.add(label, pg, maria_rate, maria_rate / pg)
    report.data = {"samples": samples, "median": med, "rows": rows, "events": events, "mariadb": version}
    report.notes.append("each database is a dedicated server on this machine; both use kafkaguard's default settings")
    report.notes.append(f"profile {profile}")
    return report


def _server_version(server: MariaDbServer) -> str:
    engine = create_engine(url=server.url())
    with engine.connect() as conn:
        full = str(conn.execute(text("SELECT VERSION()")).scalar_one())
    engine.dispose()
    return full.split("-", 1)[0]
