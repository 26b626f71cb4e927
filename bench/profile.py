"""Where the time goes: py-spy samples of a relay process (and, in-process, the consumer) under load.

``python -m bench.profile relay [--rows N]``: one relay process drains a pre-filled outbox while
``py-spy record`` samples it (all threads, native frames off); prints the top frames by own time
and by inclusive time, and writes the collapsed stacks to ``reports/bench/profile-relay.txt``.

``python -m bench.profile relay-cpu [--rows N] [--relay-batch B ...] [--rounds R]``: the CPU of each process
group (relay, PostgreSQL, Kafka, the rest) while one relay drains, from ``/proc`` (:mod:`bench.cpu_split`).
``relay-phases`` (same options): an in-process relay's wall time per step of its rounds.

``python -m bench.profile consumer [--events N] [--batch-size B] [--per-event]``: the same for kafkaguard's
consumer worker (run as ``python -m kafkaguard consume`` with the bench handler registry).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from bench import consumer_throughput as ct
from bench import cpu_split
from bench.common import (
    REPORT_DIR,
    BenchDb,
    Stack,
    bench_stack,
    console,
    new_schema,
    new_topic,
    outbox_empty,
    prefill,
    python_env,
    shard_owners,
    start_relay,
    stop,
    wait_until,
)
from kafkaguard.process_gc import tune_gc
from kafkaguard.relay.rows import OutboxRow
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.stores import outbox as relay_store
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_topics import TopicRegistry


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy is missing: pip install py-spy (it is in the bench extra)")
    return found


def record(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes]:
    """Start ``py-spy record`` of ``pid`` into ``out`` (collapsed stacks, idle frames dropped)."""
    cmd = [py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    cmd += ["--duration", str(seconds), "--rate", "200", "--threads"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarise(collapsed: Path, top: int = 20) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """(own-time, inclusive-time) top frames as shares of all samples of the busiest thread set."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith("thread (") and not f.startswith("process ")]
        if not frames:
            continue
        # The producer's poll thread mostly waits inside librdkafka's poll: that is idle time, not work.
        if any("_poll_loop" in f for f in frames) and frames[-1].startswith("poll"):
            continue
        total += count
        own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames if _ours(f)}:
            incl[name] += count
    if not total:
        return [], []
    return (
        [(k, v / total) for k, v in own.most_common(top)],
        [(k, v / total) for k, v in incl.most_common(top)],
    )


def _ours(frame: str) -> bool:
    """A frame of kafkaguard's library code or the bench's (not the CLI wrappers around them)."""
    return ("kafkaguard/" in frame or "/bench/" in frame) and "/cli/" not in frame


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py:123)"
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.rstrip(')')).name})" if where else name


def print_summary(title: str, collapsed: Path) -> dict[str, list[tuple[str, float]]]:
    own, incl = summarise(collapsed)
    console.print(f"[bold]{title}[/bold] — top frames by own time (share of busy samples)")
    for name, share in own:
        console.print(f"  {share:6.1%}  {name}")
    console.print("  … by inclusive time")
    for name, share in incl:
        console.print(f"  {share:6.1%}  {name}")
    return {"own": own, "inclusive": incl}


def fresh_outbox(stack: Stack, prefix: str) -> tuple[BenchDb, str]:
    """A fresh schema with kafkaguard's tables, and a fresh aggregate type whose topic exists."""
    db = new_schema(stack, prefix)
    aggregate = f"{prefix}{uuid.uuid4().hex[:8]}"
    new_topic(stack, aggregate)
    return db, aggregate


def profile_relay(stack: Stack, rows: int) -> dict[str, list[tuple[str, float]]]:
    db, aggregate = fresh_outbox(stack, "pr")
    proc = start_relay(db, stack.bootstrap, REPORT_DIR / "logs" / f"profile-relay-{db.schema}.log", name="profiled")
    out = REPORT_DIR / "profile-relay.txt"
    try:
        wait_until(lambda: shard_owners(db) == [64], 60, "the relay owning its shards")
        prefill(db, rows, aggregate=aggregate)
        spy = record(proc.pid, out, 600)
        started = time.monotonic()
        wait_until(outbox_empty(db), 600, "the relay to drain the outbox")
        elapsed = time.monotonic() - started
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        spy.wait(30)
    finally:
        stop(proc)
    console.print(f"relay drained {rows:,} rows in {elapsed:.1f} s under py-spy ({rows / elapsed:,.0f} events/s)")
    return print_summary("relay", out)


def profile_relay_cpu(stack: Stack, rows: int, batch_size: int) -> dict[str, float]:
    """One relay (``relay.batch_size`` = ``batch_size``) drains ``rows``; print each process group's CPU."""
    db, aggregate = fresh_outbox(stack, "pc")
    log = REPORT_DIR / "logs" / f"profile-relay-cpu-{db.schema}.log"
    proc = start_relay(db, stack.bootstrap, log, name="cpu", KAFKAGUARD_RELAY__BATCH_SIZE=str(batch_size))
    try:
        wait_until(lambda: shard_owners(db) == [64], 60, "the relay owning its shards")
        prefill(db, rows, aggregate=aggregate)
        before = cpu_split.snapshot()
        started = time.monotonic()
        wait_until(outbox_empty(db), 600, "the relay to drain the outbox")
        elapsed = time.monotonic() - started
        after = cpu_split.snapshot()
        shares = cpu_split.split(before, after, elapsed, proc.pid)
        top = cpu_split.busiest(before, after, elapsed)
    finally:
        stop(proc)
    cores = os.cpu_count() or 1
    console.print(
        f"relay batch {batch_size}: {rows:,} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s); CPU, share of one"
        f" core: relay {shares['relay']:.0%}, PostgreSQL {shares['postgres']:.0%}, Kafka {shares['kafka']:.0%},"
        f" other {shares['other']:.0%}; box {shares['box']:.0%} of {cores * 100}% (stolen by the host:"
        f" {shares['steal']:.0%})"
    )
    console.print("  busiest: " + ", ".join(f"{name} {share:.0%}" for name, share in top))
    return {"rows_per_s": rows / elapsed, **shares}


def profile_consumer(
    stack: Stack, events: int, batch_size: int, *, per_event: bool = False
) -> dict[str, list[tuple[str, float]]]:
    db = new_schema(stack, "pc")
    topic = new_topic(stack, f"pc{uuid.uuid4().hex[:8]}")
    db.execute(ct.APPLIED_DDL.format(name="bench_applied"))
    ct.produce_events(stack.bootstrap, topic, events)
    group = f"pc-{uuid.uuid4().hex[:6]}"
    registry = "bench.handlers:per_event_registry" if per_event else "bench.handlers:registry"
    cmd = [sys.executable, "-m", "kafkaguard", "consume", registry, "--group", group]
    cmd += ["--topic", topic, "--bootstrap-servers", stack.bootstrap, "--url", db.url, "--batch-size", str(batch_size)]
    cmd += ["--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    out = REPORT_DIR / f"profile-consumer-{batch_size}{'-per-event' if per_event else ''}.txt"
    try:
        wait_until(lambda: (db.scalar("SELECT count(*) FROM bench_applied") or 0) > 0, 60, "the first event applied")
        spy = record(proc.pid, out, 600)
        started = time.monotonic()
        wait_until(lambda: db.scalar("SELECT count(*) FROM bench_applied") >= events, 600, "all events", every=0.2)
        elapsed = time.monotonic() - started
        spy.send_signal(2)
        spy.wait(30)
    finally:
        stop(proc)
    console.print(f"consumer (batch {batch_size}) applied {events:,} under py-spy in ~{elapsed:.1f} s")
    return print_summary(f"consumer batch_size={batch_size}", out)


def in_process_relay(stack: Stack, prefix: str, settings: RelaySettings) -> tuple[BenchDb, str, Relay]:
    """:func:`fresh_outbox`, and a relay of it in this process."""
    db, aggregate = fresh_outbox(stack, prefix)
    relay = Relay.for_database(
        conninfo=db.conninfo,
        bootstrap=stack.bootstrap,
        settings=settings,
        topics=TopicRegistry(stack.bootstrap),
        for_aggregate=topic_for,
    )
    return db, aggregate, relay


def relay_phases(stack: Stack, rows: int, batch_size: int) -> dict[str, float]:
    """In-process relay draining ``rows``: wall time of each step of its rounds, per batch and as a share.

    The steps run one after another on the relay's thread (claim the next batch; hand it to the
    producer; wait for the previous batch's acks; settle it), so their shares add up to about the
    drain's wall time; what is left is the round's own bookkeeping and the idle wait at the end.
    ``main`` tunes the collector first, as ``kafkaguard relay`` does before its loop.
    """
    from kafkaguard.relay import worker

    spent: Counter[str] = Counter()
    calls: Counter[str] = Counter()

    def timed(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - began
                calls[name] += 1

        return run

    db, aggregate, relay = in_process_relay(stack, "ph", RelaySettings(batch_size=batch_size))
    originals = (worker.start_publish, worker.finish_publish)
    relay.outbox.claim = timed("claim", relay.outbox.claim)  # type: ignore[method-assign]
    relay.outbox.settle = timed("settle (commit)", relay.outbox.settle)  # type: ignore[method-assign]
    worker.start_publish = timed("produce (row -> message)", worker.start_publish)
    worker.finish_publish = timed("wait for acks", worker.finish_publish)
    halt = threading.Event()
    thread = threading.Thread(target=relay.run, args=(halt,))
    try:
        thread.start()
        wait_until(lambda: len(relay.held_shards) == 64, 60, "the relay owning its shards")
        prefill(db, rows, aggregate=aggregate)
        spent.clear()
        calls.clear()
        started = time.perf_counter()
        wait_until(outbox_empty(db), 900, "the relay to drain the outbox")
        elapsed = time.perf_counter() - started
    finally:
        halt.set()
        thread.join(60)
        worker.start_publish, worker.finish_publish = originals
    rate = rows / elapsed
    console.print(f"relay batch {batch_size} in-process: {rows:,} rows in {elapsed:.1f} s ({rate:,.0f} rows/s)")
    for name, seconds in spent.most_common():
        per = seconds / max(calls[name], 1) * 1000
        console.print(f"  {seconds / elapsed:6.1%}  {name}: {per:.2f} ms per batch ({calls[name]} batches)")
    return {name: seconds / elapsed for name, seconds in spent.items()}


def _claim_before_fix(
    conn: Any, shards: Any, limit: int, *, skip_blocked_keys: bool, in_flight: Any = ()
) -> list[OutboxRow]:  # pragma: no cover - the A/B's "before" arm: the claim with the planner's default sort
    conn.execute("SET enable_sort = on")
    sql = relay_store.claim_sql(skip_blocked_keys=skip_blocked_keys)
    rows = conn.execute(sql, relay_store.claim_params(shards, limit, in_flight))
    return [OutboxRow(*r) for r in rows.fetchall()]


def claim_ab(stack: Stack, rows: int, rounds: int) -> dict[str, list[float]]:
    """In-process relay draining ``rows``, the claim with and without the fix, interleaved ``rounds`` times."""
    fixed = relay_store.claim
    samples: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(rounds):
        for arm in ("before", "after"):
            relay_store.claim = _claim_before_fix if arm == "before" else fixed  # type: ignore[assignment]
            try:
                db, aggregate, relay = in_process_relay(stack, "ab", RelaySettings())
                halt = threading.Event()
                thread = threading.Thread(target=relay.run, args=(halt,))
                thread.start()
                wait_until(lambda r=relay: len(r.held_shards) == 64, 60, "the relay owning its shards")
                prefill(db, rows, aggregate=aggregate)
                started = time.perf_counter()
                wait_until(outbox_empty(db), 900, "the relay to drain the outbox")
                samples[arm].append(rows / (time.perf_counter() - started))
                halt.set()
                thread.join(60)
            finally:
                relay_store.claim = fixed
            console.print(f"  {arm}: {samples[arm][-1]:,.0f} events/s")
    return samples


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["relay", "relay-cpu", "relay-phases", "consumer", "claim-ab"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500, help="the consumer's batch_size (500: its default)")
    parser.add_argument(
        "--relay-batch", type=int, nargs="+", default=[500, 2000], help="relay-cpu, relay-phases: batch sizes"
    )
    parser.add_argument("--per-event", action="store_true", help="the per-event handler instead of the batch one")
    args = parser.parse_args(argv)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    with bench_stack() as stack:
        if args.what == "relay":
            profile_relay(stack, args.rows)
        elif args.what in ("relay-cpu", "relay-phases"):
            if args.what == "relay-phases":
                tune_gc()  # once, as `kafkaguard relay` does before its loop
            measure = profile_relay_cpu if args.what == "relay-cpu" else relay_phases
            for _ in range(args.rounds):  # interleaved: every batch size once per round
                for size in args.relay_batch:
                    measure(stack, args.rows, size)
        elif args.what == "claim-ab":
            samples = claim_ab(stack, args.rows, args.rounds)
            console.print({k: [round(x) for x in v] for k, v in samples.items()})
        else:
            profile_consumer(stack, args.events, args.batch_size, per_event=args.per_event)


if __name__ == "__main__":
    main()
