"""Part 7: peak RSS of a relay and a consumer worker while the backlog grows (10k → 100k → 1M rows).

One relay process and one consumer process (``python -m kafkaguard consume`` with its default
settings — no ``--batch-size``, so :class:`ConsumerSettings`' default — the per-event bench handler,
inbox on) live through all stages. Per stage both are frozen (SIGSTOP), the outbox gets ``backlog``
new rows in one transaction, the relay is thawed and drains them while ``/proc/<pid>/status``
VmRSS is sampled every 100 ms; then the consumer is thawed and works off the same number of
events on Kafka (its lag) while it is sampled. A memory use that grows with the backlog shows up
as a rising peak from stage to stage; a leak as a rising floor. Issue 16's targets: the consumer's
peak with a 1M backlog ≤ 150 MB and within 10 % of its peak with a 10k backlog (the report's ratio is
the largest backlog's peak over the smallest's).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    REPORT_DIR,
    Report,
    Stack,
    console,
    new_schema,
    new_topic,
    prefill,
    python_env,
    rss_kb,
    shard_owners,
    start_relay,
    stop,
    wait_until,
)
from bench.consumer_throughput import APPLIED_DDL, EVENT_TYPE
from kafkaguard.consumer.settings import ConsumerSettings

CONSUMER_PEAK_MB = 150.0  # issue 16: the consumer's RSS with a 1M backlog
CONSUMER_GROWTH = 1.10  # ... and within 10 % of its 10k-backlog value


def sample_until(pids: list[int], done: Callable[[], bool], timeout: float, what: str) -> tuple[list[int], float]:
    """Sample VmRSS (KiB) of ``pids`` every 100 ms until ``done()``; return (peak per pid, seconds)."""
    peaks = [0] * len(pids)
    started = time.monotonic()
    last_check = 0.0
    while True:
        for i, pid in enumerate(pids):
            peaks[i] = max(peaks[i], rss_kb(pid)[0])
        now = time.monotonic()
        if now - last_check >= 0.5:
            last_check = now
            if done():
                return peaks, now - started
        if now - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def run(stack: Stack, *, backlogs: tuple[int, ...], profile: str) -> Report:
    logs = REPORT_DIR / "logs"
    db = new_schema(stack, "m")
    db.execute(APPLIED_DDL.format(name="bench_applied"))
    aggregate = f"m{uuid.uuid4().hex[:8]}"
    topic = new_topic(stack, aggregate)
    relay = start_relay(db, stack.bootstrap, logs / f"relay-{db.schema}.log", name="rss")
    cmd = [sys.executable, "-m", "kafkaguard", "consume", "bench.handlers:per_event_registry"]
    cmd += ["--group", f"rss-{db.schema}", "--topic", topic, "--bootstrap-servers", stack.bootstrap, "--url", db.url]
    cmd += ["--log-level", "WARNING"]  # no --batch-size: the consumer's default settings
    clog = Path(logs / f"consumer-{db.schema}.log")
    with clog.open("wb") as out:
        consumer = subprocess.Popen(cmd, env=python_env(), stdout=out, stderr=subprocess.STDOUT)
    stages: list[dict[str, float]] = []
    total = 0
    applied = db.connect()
    outbox = db.connect()
    try:
        wait_until(lambda: shard_owners(db) == [64], 60, "the relay owning its shards")
        idle = {"relay": rss_kb(relay.pid)[0], "consumer": rss_kb(consumer.pid)[0]}
        for backlog in backlogs:
            consumer.send_signal(signal.SIGSTOP)
            relay.send_signal(signal.SIGSTOP)
            fill_seconds = prefill(db, backlog, aggregate=aggregate, event_type=EVENT_TYPE)
            total += backlog
            relay.send_signal(signal.SIGCONT)

            def outbox_empty() -> bool:
                row = outbox.execute("SELECT NOT EXISTS (SELECT 1 FROM outbox)").fetchone()
                return bool(row and row[0])

            (relay_peak,), relay_s = sample_until([relay.pid], outbox_empty, 3600, "the relay to drain")
            consumer.send_signal(signal.SIGCONT)

            def all_applied(target: int = total) -> bool:
                row = applied.execute("SELECT count(*) >= %s FROM bench_applied", (target,)).fetchone()
                return bool(row and row[0])

            (consumer_peak,), consumer_s = sample_until([consumer.pid], all_applied, 3600, "the consumer to catch up")
            for p in (relay, consumer):
                if p.poll() is not None:
                    raise RuntimeError(f"a worker exited with {p.returncode}; see {logs}")
            console.print(
                f"  backlog {backlog:,}: relay peak {relay_peak / 1024:.0f} MB ({backlog / relay_s:,.0f}/s), "
                f"consumer peak {consumer_peak / 1024:.0f} MB ({backlog / consumer_s:,.0f}/s)"
            )
            stages.append(
                {
                    "backlog": backlog,
                    "fill_s": fill_seconds,
                    "relay_peak_mb": relay_peak / 1024,
                    "relay_after_mb": rss_kb(relay.pid)[0] / 1024,
                    "relay_rate": backlog / relay_s,
                    "consumer_peak_mb": consumer_peak / 1024,
                    "consumer_after_mb": rss_kb(consumer.pid)[0] / 1024,
                    "consumer_rate": backlog / consumer_s,
                }
            )
    finally:
        for p in (relay, consumer):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
        applied.close()
        outbox.close()
        stop(consumer)
        stop(relay)
    default_batch = ConsumerSettings(group_id="g", topics=("t",)).batch_size
    report = Report(
        "rss",
        "Worker memory while the backlog grows — one relay and one consumer process through all stages "
        f"(consumer: default settings, batch_size {default_batch}, per-event handler)",
        ["backlog", "relay peak MB", "relay after MB", "relay events/s", "consumer peak MB", "consumer after MB",
         "consumer events/s"],
    )  # fmt: skip
    for s in stages:
        report.add(
            int(s["backlog"]), s["relay_peak_mb"], s["relay_after_mb"], s["relay_rate"],
            s["consumer_peak_mb"], s["consumer_after_mb"], s["consumer_rate"],
        )  # fmt: skip
    peak = max(max(s["relay_peak_mb"], s["consumer_peak_mb"]) for s in stages)
    first, last = stages[0], stages[-1]
    growth = last["consumer_peak_mb"] / first["consumer_peak_mb"]
    met_peak = last["consumer_peak_mb"] <= CONSUMER_PEAK_MB
    met_growth = growth <= CONSUMER_GROWTH
    report.notes.append(
        f"consumer peak at {int(last['backlog']):,} / at {int(first['backlog']):,} backlog: "
        f"{last['consumer_peak_mb']:.0f} / {first['consumer_peak_mb']:.0f} MB = {growth:.2f} × "
        f"(targets at 1M vs 10k: ≤ {CONSUMER_PEAK_MB:.0f} MB {'met' if met_peak else 'missed'}, "
        f"≤ {CONSUMER_GROWTH:.2f} × {'met' if met_growth else 'missed'})"
    )
    report.notes.append(
        f"idle before the first stage: relay {idle['relay'] / 1024:.0f} MB, consumer {idle['consumer'] / 1024:.0f} MB; "
        f"highest peak {peak:.0f} MB. VmRSS sampled every 100 ms"
    )
    report.data = {
        "stages": stages,
        "idle_kb": idle,
        "highest_peak_mb": peak,
        "default_batch_size": default_batch,
        "consumer_growth": growth,
        "consumer_last_peak_mb": last["consumer_peak_mb"],
    }
    return report
