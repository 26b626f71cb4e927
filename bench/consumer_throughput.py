"""Part 5: consumer throughput — raw confluent-kafka + psycopg against kafkaguard's consumer with its inbox.

The same ``events`` (kafkaguard envelope, 200-byte payloads, 1,000 keys) are produced once to a
3-partition topic; each variant reads all of them with a fresh consumer group from the earliest
offset, with kafkaguard's safe consumer settings (manual synchronous commits, read_committed), and
inserts one row per event (event id, key, payload) into a table of its own. Timed from the first
message in hand to the last event's effect committed.

- raw, per event: one transaction per message, offsets committed after each polled chunk;
- raw, batched: one transaction per polled chunk (≤ 500), ``executemany`` — the ceiling;
- kafkaguard, single mode: ``Worker`` with ``batch_size=1``: key lock, inbox dedupe, blocked
  check and the handler's insert in one transaction per event;
- kafkaguard, batch mode: ``batch_size=500``: the same guarantees, one transaction per chunk.

Both kafkaguard rows use the batch handler (:func:`insert_rows`: one ``executemany`` per run of
events; a one-element list in single mode), the raw batched loop's equivalent.
``registry_for(table, batch=False)`` gives the per-event handler (one INSERT per event) instead.
"""

from __future__ import annotations

import gc
import json
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.dialects.postgresql import JSONB, UUID

from bench.common import BenchDb, Report, Stack, median, new_schema, new_topic
from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.consumer.worker import Worker
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.transports.kafka_config import consumer_config, producer_config

EVENT_TYPE = "bench.changed"
FILLER = "x" * (200 - len('{"n":0000000,"data":""}'))
BATCH = 500

metadata = MetaData()
applied = Table(
    "bench_applied",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("key", String(255), nullable=False),
    Column("payload", JSONB, nullable=False),
)
APPLIED_DDL = "CREATE TABLE {name} (event_id uuid PRIMARY KEY, key varchar(255) NOT NULL, payload jsonb NOT NULL)"


def bench_event(i: int, keys: int = 1000) -> Event:
    """Event number ``i``: payload of exactly 200 bytes, key ``key-<i mod keys>``."""
    return Event(type=EVENT_TYPE, key=f"key-{i % keys:04d}", payload={"n": 1_000_000 + i, "data": FILLER})


def produce_events(bootstrap: str, topic: str, count: int, *, keys: int = 1000) -> None:
    """Put ``count`` bench events on ``topic`` (acks=all, idempotent); raise unless all are acknowledged."""
    producer = Producer(producer_config(bootstrap))
    failed: list[Any] = []
    for i in range(count):
        ev = bench_event(i, keys)
        while True:
            try:
                producer.produce(
                    topic,
                    value=ev.payload_bytes(),
                    key=ev.key.encode(),
                    headers=ev.kafka_headers(),
                    on_delivery=lambda err, _m: failed.append(err) if err else None,
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120) or failed:
        raise RuntimeError(f"producing bench events failed: {failed[:3]}")


def _header(headers: list[tuple[str, bytes]] | None, name: str) -> str:
    for k, v in headers or []:
        if k == name:
            return v.decode()
    raise KeyError(name)


def raw_consume(db: BenchDb, bootstrap: str, topic: str, count: int, *, batched: bool) -> float:
    """Events/s of a plain confluent-kafka consumer inserting each event with psycopg."""
    table = f"raw_{uuid.uuid4().hex[:6]}"
    db.execute(APPLIED_DDL.format(name=table))
    sql = f"INSERT INTO {table} (event_id, key, payload) VALUES (%s, %s, %s)"  # noqa: S608
    consumer = Consumer(consumer_config(bootstrap, f"raw-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    done = 0
    started: float | None = None
    with db.connect(autocommit=True) as conn:
        while done < count:
            msgs = [m for m in consumer.consume(BATCH, 0.5) if m.error() is None]
            if not msgs:
                continue
            if started is None:
                started = time.perf_counter()
            rows = [
                (_header(m.headers(), "event_id"), m.key().decode(), json.dumps(json.loads(m.value()))) for m in msgs
            ]
            if batched:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows)
            else:
                for r in rows:
                    with conn.transaction():
                        conn.execute(sql, r)
            done += len(msgs)
            positions = {(m.topic(), m.partition()): m.offset() + 1 for m in msgs}
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()], asynchronous=False)
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    stored = db.scalar(f"SELECT count(*) FROM {table}")  # noqa: S608
    if stored != count:
        raise RuntimeError(f"raw consumer stored {stored} of {count}")
    return count / elapsed


class _TimedSource:
    """A MessageSource that notes when the first records arrive (delegates everything else)."""

    def __init__(self, inner: KafkaSource) -> None:
        self.inner = inner
        self.first: float | None = None

    def poll(self, max_records: int, timeout: float) -> list[Record]:
        records = self.inner.poll(max_records, timeout)
        if records and self.first is None:
            self.first = time.perf_counter()
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def row_of(event: Event) -> dict[str, Any]:
    """The ``bench_applied`` row of ``event``."""
    return {"event_id": event.event_id, "key": event.key, "payload": event.payload}


def insert_rows(table: Table, events: list[Event], ctx: BatchContext[Any]) -> None:
    """Insert ``events`` into ``table`` with one executemany in the inbox transaction."""
    ctx.session.execute(insert(table), [row_of(e) for e in events])


def registry_for(table: Table, *, batch: bool = True) -> HandlerRegistry:
    """A registry whose one handler inserts events into ``table`` in the inbox transaction:
    a batch handler (one executemany per run) or, with ``batch=False``, one INSERT per event."""
    registry = HandlerRegistry()
    if batch:
        registry.register_batch(EVENT_TYPE, lambda events, ctx: insert_rows(table, events, ctx))
    else:
        registry.register(EVENT_TYPE, lambda event, ctx: ctx.session.execute(insert(table).values(**row_of(event))))
    return registry


def kafkaguard_consume(db: BenchDb, bootstrap: str, topic: str, count: int, *, batch_size: int) -> float:
    """Events/s of kafkaguard's Worker (inbox dedupe) applying ``count`` events with ``batch_size``."""
    name = f"kg_{uuid.uuid4().hex[:6]}"
    db.execute(APPLIED_DDL.format(name=name))
    table = Table(name, MetaData(), *(c.copy() for c in applied.columns))
    engine = sync_engine(db.url, pool_size=2)
    settings = ConsumerSettings(group_id=f"kg-{uuid.uuid4().hex[:8]}", topics=(topic,), batch_size=batch_size)
    applier = Applier(engine, registry_for(table), settings, stop=threading.Event())
    source = _TimedSource(KafkaSource(bootstrap, settings.group_id, [topic]))
    last = [0.0]
    seen = [0]

    def on_outcome(_record: Record, _outcome: Any) -> None:
        seen[0] += 1
        if seen[0] >= count:
            last[0] = time.perf_counter()
            worker.stop()

    worker = Worker(source, applier, on_outcome=on_outcome)  # type: ignore[arg-type]
    worker.run()
    engine.dispose()
    stored = db.scalar(f"SELECT count(*) FROM {name}")  # noqa: S608
    inboxed = db.scalar("SELECT count(*) FROM kafka_inbox WHERE consumer_group = %s", (settings.group_id,))
    if stored != count or inboxed != count:
        raise RuntimeError(f"kafkaguard consumer stored {stored}, inbox {inboxed}, of {count}")
    assert source.first is not None
    return count / (last[0] - source.first)


def run(stack: Stack, *, events: int, rounds: int, profile: str) -> Report:
    # As `kafkaguard consume` does (consumer/runner.py): what is alive now lives as long as the
    # process, so full collections need not re-scan it. Done once here, so every variant (raw ones
    # too) runs in the same process state.
    gc.collect()
    gc.freeze()
    db = new_schema(stack, "k")
    topic = new_topic(stack, f"k{uuid.uuid4().hex[:8]}")
    produce_events(stack.bootstrap, topic, events)
    variants = {
        "raw_single": lambda: raw_consume(db, stack.bootstrap, topic, events, batched=False),
        "kg_single": lambda: kafkaguard_consume(db, stack.bootstrap, topic, events, batch_size=1),
        "raw_batch": lambda: raw_consume(db, stack.bootstrap, topic, events, batched=True),
        "kg_batch": lambda: kafkaguard_consume(db, stack.bootstrap, topic, events, batch_size=BATCH),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for key, fn in variants.items():
            samples[key].append(fn())
    med = {k: median(v) for k, v in samples.items()}
    report = Report(
        "consumer",
        f"Consumer throughput — {events:,} events of 200 B, 3 partitions, synchronous_commit=on "
        f"(median of {rounds} interleaved rounds)",
        ["variant", "events/s", "× raw baseline", "rounds (events/s)"],
    )
    labels = {
        "raw_single": ("raw confluent-kafka + psycopg, tx per event", "raw_single"),
        "kg_single": ("kafkaguard consumer + inbox, single mode", "raw_single"),
        "raw_batch": ("raw confluent-kafka + psycopg, tx per 500 (baseline)", "raw_batch"),
        "kg_batch": ("kafkaguard consumer + inbox, batch mode (500)", "raw_batch"),
    }
    for key, (label, base) in labels.items():
        report.add(label, med[key], med[key] / med[base], ", ".join(f"{x:,.0f}" for x in samples[key]))
    report.notes.append(
        "single mode is compared with the raw tx-per-event loop, batch mode with the raw batched loop; "
        "target: batch mode ≥ 0.7 × raw batched baseline"
    )
    report.data = {
        "events": events,
        "rounds": rounds,
        "samples": samples,
        "median": med,
        "batch_ratio": med["kg_batch"] / med["raw_batch"],
        "single_ratio": med["kg_single"] / med["raw_single"],
        "single_vs_raw_batch": med["kg_single"] / med["raw_batch"],
    }
    return report
