"""Part 5: consumer throughput — raw confluent-kafka + psycopg against kafkaguard's consumer with its inbox.

The same ``events`` (kafkaguard envelope, 200-byte payloads, 1,000 keys) are produced once to a
3-partition topic; each variant reads all of them with a fresh consumer group from the earliest
offset, with kafkaguard's safe consumer settings (manual synchronous commits, read_committed), and
inserts one row per event (event id, key, payload) into a table of its own. Timed from the first
message in hand to the last event's effect committed.

Raw baselines (one per mode of kafkaguard's, same offsets handling):

- raw, tx per event: one INSERT and one transaction per message — the baseline of tx-per-event mode;
- raw, chunk-commit: one INSERT per message, one transaction per polled chunk (≤ 500) — the
  baseline of the default mode (issue 16 item 1: many events per transaction, a statement each);
- raw, batched: one ``executemany`` and one transaction per polled chunk — the baseline of batch mode.

Two more raw loops write what kafkaguard writes besides the effect, with no Python of kafkaguard's:
the floor of its guarantees on this database, to tell the data's cost from the code's.

- raw, tx per event + kafkaguard's writes: per event one transaction calling kafkaguard's own
  ``kafkaguard_begin_event`` statement (key lock, dedupe, blocked check, inbox row: one round trip),
  then the INSERT of the effect;
- raw, batched + kafkaguard's writes: per polled chunk one statement locking the chunk's keys
  (sorted), one statement inserting the inbox rows (an array per column), the effects as one
  ``executemany``, one transaction.

kafkaguard's ``Worker`` (built by :meth:`Worker.from_settings`, as ``kafkaguard consume`` does; key
lock, inbox dedupe, blocked check and the handler's insert in the inbox transaction):

- default settings (no ``batch_size`` passed: whatever :class:`ConsumerSettings` defaults to),
  per-event handler (one INSERT per event);
- ``batch_size=1`` (a transaction per event), per-event handler;
- ``batch_size=500``, batch handler (:func:`insert_rows`: one ``executemany`` per run of events);
- the per-event handler as ``async def`` on the AsyncSession, under default settings and under
  ``batch_size=1`` (async beside sync, same workload).

The variants run interleaved (each once per round, A, B, C, … A, B, C, …); the table shows the
median of the rounds and each row's ratio to its raw baseline, beside issue 16's target.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy.dialects.postgresql import JSONB, UUID

from bench.common import BenchDb, Report, Stack, client_security, median, new_schema, new_topic
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.consumer.worker import Worker
from kafkaguard.envelope import Event
from kafkaguard.process_gc import DEFAULT_GC_THRESHOLD, tune_gc
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.stores.inbox_postgres import BEGIN_EVENT_SQL, PostgresConsumerStore, begin_event_params
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
    producer = Producer(producer_config(bootstrap, client_security()))
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


RAW_MODES = ("tx", "chunk", "batch", "tx_inbox", "batch_inbox")
RAW_LOCK_KEYS = "SELECT count(pg_advisory_xact_lock(hashtext(%s), hashtext(k))) FROM unnest(%s::text[]) AS k"
RAW_INBOX_BATCH = (  # one statement for the chunk's rows, one array per column
    'INSERT INTO kafka_inbox (consumer_group, event_id, type, key, topic, partition, "offset", content_hash)'
    " SELECT %s, * FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::int[], %s::bigint[], %s::bytea[])"
    " ON CONFLICT DO NOTHING"
)


def poll_chunk(consumer: Consumer, timeout: float = 0.5) -> list[Any]:
    """Up to ``BATCH`` messages, polled as kafkaguard's KafkaSource polls: what is already fetched,
    else a wait of up to ``timeout`` for one message plus whatever arrived with it.

    ``consume(BATCH, timeout)`` alone returns only at ``BATCH`` messages or the timeout, so every
    chunk short of 500 (the last one of a run whose size is not a multiple of 500) sat idle for
    ``timeout`` and understated the raw rates (at 600 events, raw batched read 1,100/s).
    """
    msgs = consumer.consume(BATCH, 0)
    if not msgs:
        msgs = consumer.consume(1, timeout)
        if msgs:
            msgs += consumer.consume(BATCH - 1, 0)
    return msgs


def raw_consume(db: BenchDb, bootstrap: str, topic: str, count: int, *, mode: str) -> float:
    """Events/s of a plain confluent-kafka consumer inserting each event with psycopg.

    ``mode``: ``"tx"`` one INSERT and one transaction per event; ``"chunk"`` one INSERT per event,
    one transaction per polled chunk (≤ 500); ``"batch"`` one ``executemany`` and one transaction
    per polled chunk (:func:`poll_chunk`); ``"tx_inbox"`` and ``"batch_inbox"``: ``"tx"`` and
    ``"batch"`` plus kafkaguard's writes (key locks and inbox rows, see the module docstring).
    Offsets are committed (synchronously) after each chunk in every mode.
    """
    if mode not in RAW_MODES:
        raise ValueError(f"mode must be one of {RAW_MODES}")
    table = f"raw_{uuid.uuid4().hex[:6]}"
    db.execute(APPLIED_DDL.format(name=table))
    sql = f"INSERT INTO {table} (event_id, key, payload) VALUES (%s, %s, %s)"  # noqa: S608
    group = f"raw-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(consumer_config(bootstrap, group, client_security()))
    consumer.subscribe([topic])
    done = 0
    started: float | None = None
    with db.connect(autocommit=True) as conn:
        while done < count:
            msgs = [m for m in poll_chunk(consumer) if m.error() is None]
            if not msgs:
                continue
            if started is None:
                started = time.perf_counter()
            rows = [
                (_header(m.headers(), "event_id"), m.key().decode(), json.dumps(json.loads(m.value()))) for m in msgs
            ]
            if mode == "batch":
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows)
            elif mode == "batch_inbox":
                _raw_batch_inbox(conn, sql, group, msgs, rows)
            elif mode == "tx_inbox":
                for m, r in zip(msgs, rows, strict=True):
                    with conn.transaction():
                        params = begin_event_params(group, r[1], _inbox_row(m, r), check_blocked=True)
                        found = conn.execute(BEGIN_EVENT_SQL, params).fetchone()
                        if found is not None and found[0] == 0:  # new, key not blocked
                            conn.execute(sql, r)
            elif mode == "chunk":
                with conn.transaction():
                    for r in rows:
                        conn.execute(sql, r)
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
    inboxed = db.scalar("SELECT count(*) FROM kafka_inbox WHERE consumer_group = %s", (group,))
    if stored != count or inboxed != (count if mode.endswith("_inbox") else 0):
        raise RuntimeError(f"raw consumer ({mode}) stored {stored}, inbox {inboxed}, of {count}")
    return count / elapsed


_INBOX_COLUMNS = ("event_id", "type", "key", "topic", "partition", "offset", "content_hash")  # RAW_INBOX_BATCH's


def _inbox_row(m: Any, r: tuple[str, str, str]) -> dict[str, Any]:
    """The inbox row of message ``m`` (bench row ``r``); the content hash of its value bytes."""
    return {
        "event_id": r[0], "type": EVENT_TYPE, "key": r[1], "topic": m.topic(), "partition": m.partition(),
        "offset": m.offset(), "content_hash": hashlib.sha256(m.value()).digest(),
    }  # fmt: skip


def _raw_batch_inbox(conn: Any, sql: str, group: str, msgs: list[Any], rows: list[tuple[str, str, str]]) -> None:
    """One chunk of the ``batch_inbox`` raw loop: key locks, inbox rows and effects, one transaction."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(RAW_LOCK_KEYS, (group, sorted({r[1] for r in rows})))
        inbox = [_inbox_row(m, r) for m, r in zip(msgs, rows, strict=True)]
        cur.execute(RAW_INBOX_BATCH, (group, *([row[c] for row in inbox] for c in _INBOX_COLUMNS)))
        cur.executemany(sql, rows)


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


def registry_for(
    table: Table, *, batch: bool = True, asynchronous: bool = False, driver: bool = False
) -> HandlerRegistry:
    """A registry whose one handler inserts events into ``table`` in the inbox transaction:
    a batch handler (one executemany per run) or, with ``batch=False``, one INSERT per event —
    an ``async def`` one on the AsyncSession (``ctx.session``) with ``asynchronous=True``, or on the
    driver's connection (``ctx.connection``: the raw loops' very statement) with ``driver=True``."""
    registry = HandlerRegistry()
    if driver:
        sql = f"INSERT INTO {table.name} (event_id, key, payload) VALUES (%s, %s, %s)"  # noqa: S608 - bench table

        def apply_on_connection(event: Event, ctx: HandlerContext[Any]) -> None:
            ctx.connection.execute(sql, (str(event.event_id), event.key, json.dumps(event.payload)))

        registry.register(EVENT_TYPE, apply_on_connection)
        return registry
    # Built once: the per-event handlers run the same one-row INSERT as the raw loops, with the row
    # as parameters (``insert(table).values(**row)`` built per event costs SQLAlchemy a new construct
    # and cache key each time — a handler-side cost, measured in bench/RESULTS.md).
    statement = insert(table)
    if batch:
        if asynchronous:
            raise ValueError("the bench has no async batch handler")
        registry.register_batch(EVENT_TYPE, lambda events, ctx: insert_rows(table, events, ctx))
    elif asynchronous:

        async def apply_event(event: Event, ctx: HandlerContext[Any]) -> None:
            await ctx.session.execute(statement, row_of(event))

        registry.register(EVENT_TYPE, apply_event)
    else:
        registry.register(EVENT_TYPE, lambda event, ctx: ctx.session.execute(statement, row_of(event)))
    return registry


def kafkaguard_consume(
    db: BenchDb,
    bootstrap: str,
    topic: str,
    count: int,
    *,
    batch_size: int | None,
    batch_handler: bool = False,
    asynchronous: bool = False,
    driver: bool = False,
) -> float:
    """Events/s of kafkaguard's Worker (inbox dedupe) applying ``count`` events.

    ``batch_size=None`` leaves it at :class:`ConsumerSettings`' default (the settings users run).
    The worker is built as ``kafkaguard consume`` builds it (:meth:`Worker.from_settings`: a sync
    engine, and an async one when a handler is ``async def``), with the Kafka source wrapped to
    note when the first records arrive.
    """
    name = f"kg_{uuid.uuid4().hex[:6]}"
    db.execute(APPLIED_DDL.format(name=name))
    table = applied.to_metadata(MetaData(), name=name)
    group = f"kg-{uuid.uuid4().hex[:8]}"
    consumer = ConsumerSettings(
        group_id=group, topics=(topic,), **({} if batch_size is None else {"batch_size": batch_size})
    )
    settings = KafkaguardSettings(
        bootstrap_servers=bootstrap, database_url=db.server.url(), db_schema=db.schema, consumer=consumer
    )
    source = _TimedSource(
        KafkaSource(
            bootstrap, group, [topic], overrides=settings.kafka_consumer_overrides(), instance_id=consumer.instance_id
        )
    )
    last = [0.0]
    seen = [0]

    def on_outcome(_record: Record, _outcome: Any) -> None:
        seen[0] += 1
        if seen[0] >= count:
            last[0] = time.perf_counter()
            worker.stop()

    registry = registry_for(table, batch=batch_handler, asynchronous=asynchronous, driver=driver)
    worker = Worker.from_settings(settings, registry, on_outcome=on_outcome, source=source)  # type: ignore[arg-type]
    try:
        worker.run()
    finally:
        store = worker.applier.store
        if isinstance(store, PostgresConsumerStore):
            store.engine.dispose()
            if store.async_engine is not None:
                asyncio.run(store.async_engine.dispose())
    stored = db.scalar(f"SELECT count(*) FROM {name}")  # noqa: S608
    inboxed = db.scalar("SELECT count(*) FROM kafka_inbox WHERE consumer_group = %s", (group,))
    if stored != count or inboxed != count:
        raise RuntimeError(f"kafkaguard consumer stored {stored}, inbox {inboxed}, of {count}")
    assert source.first is not None
    return count / (last[0] - source.first)


# (key, label, baseline key): the table's rows, in order. Each kafkaguard row is compared with the raw
# loop that does the same work per transaction; the targets are issue 16's.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("raw_tx", "raw confluent-kafka + psycopg, tx per event", "raw_tx"),
    ("raw_chunk", "raw, tx per polled chunk, INSERT each", "raw_chunk"),
    ("raw_batch", "raw, tx per polled chunk, executemany", "raw_batch"),
    ("raw_tx_inbox", "raw, tx per event + kafkaguard's writes (begin_event)", "raw_tx"),
    ("raw_batch_inbox", "raw, batched + kafkaguard's writes (key locks, inbox rows)", "raw_batch"),
    ("kg_default", "kafkaguard default, per-event handler", "raw_chunk"),
    ("kg_default_conn", "kafkaguard default, per-event handler on ctx.connection", "raw_chunk"),
    ("kg_tx", "kafkaguard batch_size=1, per-event handler", "raw_tx"),
    ("kg_tx_conn", "kafkaguard batch_size=1, per-event handler on ctx.connection", "raw_tx"),
    ("kg_batch", f"kafkaguard batch_size={BATCH}, batch handler", "raw_batch"),
    ("kg_async_default", "kafkaguard default, async per-event handler", "raw_chunk"),
    ("kg_async_tx", "kafkaguard batch_size=1, async per-event", "raw_tx"),
)
BASELINES = {"raw_tx": "raw tx/event", "raw_chunk": "raw chunk-commit", "raw_batch": "raw batched"}
TODAY_DEFAULT = 398.0  # issue 16: events/s of the default consumer (batch_size=1) before it
TARGETS: dict[str, tuple[float, float]] = {  # key: (× its raw baseline, events/s at least)
    "kg_default": (0.7, 10 * TODAY_DEFAULT),
    "kg_default_conn": (0.7, 10 * TODAY_DEFAULT),
    "kg_tx": (0.7, 0.0),
    "kg_tx_conn": (0.7, 0.0),
    "kg_batch": (0.8, 0.0),
}


def run(stack: Stack, *, events: int, rounds: int, profile: str) -> Report:
    # As `kafkaguard consume` does (consumer/runner.py): what is alive now lives as long as the
    # process, so collections need not re-scan it, and young collections come every 50,000
    # allocations. Done once here, so every variant (raw ones too) runs in the same process state.
    tune_gc(DEFAULT_GC_THRESHOLD)
    db = new_schema(stack, "k")
    topic = new_topic(stack, f"k{uuid.uuid4().hex[:8]}")
    produce_events(stack.bootstrap, topic, events)
    default_batch = ConsumerSettings(group_id="g", topics=("t",)).batch_size
    bs, tp = stack.bootstrap, topic
    variants: dict[str, Callable[[], float]] = {
        "raw_tx": lambda: raw_consume(db, bs, tp, events, mode="tx"),
        "kg_tx": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=1),
        "kg_tx_conn": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=1, driver=True),
        "raw_chunk": lambda: raw_consume(db, bs, tp, events, mode="chunk"),
        "kg_default": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=None),
        "kg_default_conn": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=None, driver=True),
        "raw_batch": lambda: raw_consume(db, bs, tp, events, mode="batch"),
        "raw_tx_inbox": lambda: raw_consume(db, bs, tp, events, mode="tx_inbox"),
        "raw_batch_inbox": lambda: raw_consume(db, bs, tp, events, mode="batch_inbox"),
        "kg_batch": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=BATCH, batch_handler=True),
        "kg_async_default": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=None, asynchronous=True),
        "kg_async_tx": lambda: kafkaguard_consume(db, bs, tp, events, batch_size=1, asynchronous=True),
    }
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):  # interleaved: every variant once per round, same events
        for key, fn in variants.items():
            samples[key].append(fn())
    med = {k: median(v) for k, v in samples.items()}
    ratios = {key: med[key] / med[base] for key, _label, base in ROWS}
    report = Report(
        "consumer",
        f"Consumer throughput — {events:,} events of 200 B, 3 partitions, synchronous_commit=on "
        f"(median of {rounds} interleaved rounds; default batch_size = {default_batch}; polled chunks ≤ {BATCH})",
        ["variant", "events/s", "baseline", "× baseline", "target", "rounds (events/s)"],
    )
    for key, label, base in ROWS:
        target = TARGETS.get(key)
        verdict = ""
        if target is not None:
            met = ratios[key] >= target[0] and med[key] >= target[1]
            verdict = f"≥ {target[0]}" + (f", ≥ {target[1]:,.0f}/s" if target[1] else "")
            verdict += ": met" if met else ": missed"
        report.add(label, med[key], BASELINES[base], ratios[key], verdict, ", ".join(f"{x:,.0f}" for x in samples[key]))
    report.notes.append(
        f"default settings vs issue 16's 398 events/s: {med['kg_default'] / TODAY_DEFAULT:.1f} × (target ≥ 10 ×); "
        f"async / sync: default {med['kg_async_default'] / med['kg_default']:.2f} ×, "
        f"batch_size=1 {med['kg_async_tx'] / med['kg_tx']:.2f} ×"
    )
    floor = {"kg_tx": "raw_tx_inbox", "kg_tx_conn": "raw_tx_inbox", "kg_batch": "raw_batch_inbox"}
    vs_floor = {k: med[k] / med[f] for k, f in floor.items()}
    report.notes.append(
        "against the raw loops that write what kafkaguard writes (the floor of its guarantees here): "
        + ", ".join(f"{k} {v:.2f} ×" for k, v in vs_floor.items())
        + f"; the floors themselves: tx/event {ratios['raw_tx_inbox']:.2f} × raw tx/event, "
        f"batched {ratios['raw_batch_inbox']:.2f} × raw batched"
    )
    report.notes.append(
        "per-event handler = one INSERT per event on ctx.session (SQLAlchemy), or on ctx.connection (psycopg, "
        "the raw loops' statement); batch handler = one executemany per run; "
        "async rows: the same handler as `async def` on the AsyncSession (the engine Worker.from_settings builds)"
    )
    report.data = {
        "events": events,
        "rounds": rounds,
        "default_batch_size": default_batch,
        "samples": samples,
        "median": med,
        "ratios": ratios,
        "vs_floor": vs_floor,
        "default_vs_today": med["kg_default"] / TODAY_DEFAULT,
        "async_vs_sync_default": med["kg_async_default"] / med["kg_default"],
        "async_vs_sync_tx": med["kg_async_tx"] / med["kg_tx"],
    }
    return report
