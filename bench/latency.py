"""Part 4: end-to-end latency, commit → on Kafka → applied, under an open-loop writer.

Per offered rate: a fresh schema, a topic with ``message.timestamp.type=LogAppendTime`` (the broker
stamps each record when it appends it: the "on Kafka" time), one relay process and one consumer
process (:mod:`bench.latency_consumer`, batch mode, inbox on) with default settings. The writer
(this process) is open-loop: every 2 ms it commits, in one transaction through
:func:`kafkaguard.add_events`, all events that fell due at the offered rate since the last commit,
so a slow commit makes the next transaction bigger instead of lowering the rate. It notes each
transaction's commit time (after ``COMMIT`` returned); the consumer notes each event's commit of
its effect. All processes share this machine's clock. One warm-up event is applied before timing.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from sqlalchemy import Engine

from bench.common import (
    REPORT_DIR,
    BenchDb,
    Report,
    Stack,
    new_schema,
    percentile,
    python_env,
    shard_owners,
    start_relay,
    stop,
    wait_until,
)
from bench.consumer_throughput import APPLIED_DDL, EVENT_TYPE, FILLER
from bench.latency_consumer import DEFAULT
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_events

TICK = 0.002
CONSUMER_BATCH = 500  # the batch-mode comparison row


def log_append_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    spec = NewTopic(
        topic, num_partitions=partitions, replication_factor=1, config={"message.timestamp.type": "LogAppendTime"}
    )
    for future in admin.create_topics([spec]).values():
        future.result(30)


def open_loop(engine: Engine, aggregate: str, rate: int, seconds: float) -> tuple[dict[str, float], float]:
    """Write at ``rate`` events/s for ``seconds``; return ({event_id: commit time}, achieved rate)."""
    committed: dict[str, float] = {}
    written = 0
    start = time.perf_counter()
    wall0 = time.time() - start  # wall clock = wall0 + perf_counter(); monotonic within the run
    end = start + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * rate) - written
        if due > 0:
            events = [
                Event(type=EVENT_TYPE, key=f"key-{(written + j) % 1000:04d}", aggregate_type=aggregate,
                      payload={"n": 1_000_000 + written + j, "data": FILLER})
                for j in range(due)
            ]  # fmt: skip
            with engine.begin() as conn:
                add_events(conn, events)
            at = wall0 + time.perf_counter()
            for ev in events:
                committed[str(ev.event_id)] = at
            written += due
        left = TICK - (time.perf_counter() - now)
        if left > 0:
            time.sleep(left)
    elapsed = time.perf_counter() - start
    return committed, written / elapsed


def one_rate(stack: Stack, rate: int, seconds: float, logs: Path, batch_size: str = DEFAULT) -> dict[str, Any]:
    """Latencies at ``rate``; ``batch_size``: the consumer's (``DEFAULT``: its default settings)."""
    db: BenchDb = new_schema(stack, "l")
    db.execute(APPLIED_DDL.format(name="bench_applied"))
    aggregate = f"l{uuid.uuid4().hex[:8]}"
    topic = f"outbox.event.{aggregate}"
    log_append_topic(stack.bootstrap, topic)
    engine = sync_engine(db.url, pool_size=2)
    out = logs / f"latency-{db.schema}.txt"
    relay = start_relay(db, stack.bootstrap, logs / f"relay-{db.schema}.log", name="latency")
    cmd = [sys.executable, "-m", "bench.latency_consumer", db.url, stack.bootstrap, topic, f"lat-{db.schema}"]
    cmd += [batch_size, str(out)]
    with (logs / f"consumer-{db.schema}.log").open("wb") as clog:
        consumer = subprocess.Popen(cmd, env=python_env(), stdout=clog, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: shard_owners(db) == [64], 60, "the relay owning its shards")
        with engine.begin() as conn:  # warm-up: the group has joined and the path is hot
            add_events(conn, [Event(type=EVENT_TYPE, key="warm", aggregate_type=aggregate, payload={"warm": 1})])
        wait_until(lambda: db.scalar("SELECT count(*) FROM bench_applied") == 1, 90, "the warm-up event applied")
        committed, achieved = open_loop(engine, aggregate, rate, seconds)
        total = len(committed) + 1
        # A consumer slower than the offered rate still gets its row (with its backlog in the latencies):
        # the wait allows it 250 events/s at least.
        drain = 300 + total / 250
        wait_until(lambda: db.scalar("SELECT count(*) FROM bench_applied") >= total, drain, "all events applied", 0.1)
    finally:
        stop(consumer)
        stop(relay)
        engine.dispose()
    to_kafka: list[float] = []
    to_applied: list[float] = []
    for line in out.read_text().splitlines():
        event_id, appended, applied_at, _outcome = line.split()
        t0 = committed.get(event_id)
        if t0 is None:
            continue  # the warm-up event
        to_kafka.append((float(appended) - t0) * 1000)
        to_applied.append((float(applied_at) - t0) * 1000)
    if len(to_applied) != len(committed):
        raise RuntimeError(f"latency: {len(to_applied)} of {len(committed)} events seen applied")
    return {
        "consumer": "default" if batch_size == DEFAULT else f"batch {batch_size}",
        "offered": rate,
        "achieved": achieved,
        "events": len(committed),
        **{f"kafka_p{p}": percentile(to_kafka, p) for p in (50, 95, 99)},
        **{f"applied_p{p}": percentile(to_applied, p) for p in (50, 95, 99)},
        "applied_max": max(to_applied),
    }


def run(
    stack: Stack, *, rates: tuple[int, ...], seconds: float, profile: str, batch_rates: tuple[int, ...] = ()
) -> Report:
    logs = REPORT_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = [one_rate(stack, rate, seconds, logs) for rate in rates]
    results += [one_rate(stack, rate, seconds, logs, str(CONSUMER_BATCH)) for rate in batch_rates]
    default_batch = ConsumerSettings(group_id="g", topics=("t",)).batch_size
    report = Report(
        "latency",
        f"End-to-end latency (ms) — open-loop writer, {seconds:.0f} s per rate, 1 relay, 1 consumer "
        f"(default settings: batch_size {default_batch}, per-event handler; inbox), synchronous_commit=on, acks=all",
        ["consumer", "offered/s", "achieved/s", "events", "→Kafka p50", "p95", "p99", "→applied p50", "p95", "p99",
         "max"],
    )  # fmt: skip
    for r in results:
        report.add(
            r["consumer"], r["offered"], r["achieved"], r["events"], r["kafka_p50"], r["kafka_p95"], r["kafka_p99"],
            r["applied_p50"], r["applied_p95"], r["applied_p99"], r["applied_max"],
        )  # fmt: skip
    report.notes.append(
        "commit = the writer's COMMIT returned; →Kafka = broker LogAppendTime; →applied = the consumer's "
        "transaction with the effect and inbox row committed. Target: applied p99 ≤ 50 ms at 2,000 and 5,000/s "
        "with default consumer settings (plus a 10,000/s row); 'batch 500' rows: batch mode with the batch handler"
    )
    report.data = {"rates": results, "seconds": seconds, "default_batch_size": default_batch}
    return report
