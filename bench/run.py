"""Run the benchmarks: ``python -m bench.run [--quick] [--only relay,consumer,...]``.

Each part prints one table and writes ``reports/bench/<part>.json`` (``<part>-quick.json`` with
``--quick``). ``--quick`` runs every part at tiny sizes: it checks the harness, not the targets.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import consumer_throughput, databases, latency, relay_throughput, rss, write_path
from bench.common import Report, Stack, bench_stack, console


@dataclass(frozen=True)
class Sizes:
    """How big each part runs."""

    relay_rows: int
    relay_rounds: int
    peer_rows: int
    consumer_events: int
    consumer_rounds: int
    latency_rates: tuple[int, ...]  # consumer with default settings
    latency_batch_rates: tuple[int, ...]  # and in batch mode (500, batch handler), for comparison
    latency_seconds: float
    rss_backlogs: tuple[int, ...]
    write_seconds: float
    write_connections: int
    write_rounds: int
    db_rows: int  # the relay on PostgreSQL and on MariaDB (bench/databases.py)
    db_events: int  # the consumer on both
    db_rounds: int


FULL = Sizes(
    relay_rows=100_000,
    relay_rounds=2,
    peer_rows=5_000,
    consumer_events=20_000,
    consumer_rounds=2,
    latency_rates=(500, 2000, 5000, 10_000),
    latency_batch_rates=(2000,),
    latency_seconds=15.0,
    rss_backlogs=(10_000, 100_000, 1_000_000),
    write_seconds=15.0,
    write_connections=32,
    write_rounds=2,
    db_rows=50_000,
    db_events=20_000,
    db_rounds=2,
)
QUICK = Sizes(
    relay_rows=3_000,
    relay_rounds=1,
    peer_rows=300,
    consumer_events=600,
    consumer_rounds=1,
    latency_rates=(200, 500),
    latency_batch_rates=(),
    latency_seconds=3.0,
    rss_backlogs=(1_000, 3_000),
    write_seconds=3.0,
    write_connections=8,
    write_rounds=1,
    db_rows=2_000,
    db_events=600,
    db_rounds=1,
)


def parts(sizes: Sizes, profile: str) -> dict[str, Callable[[Stack], Report]]:
    return {
        "relay": lambda s: relay_throughput.run(
            s, rows=sizes.relay_rows, rounds=sizes.relay_rounds, profile=profile, peer_rows=sizes.peer_rows
        ),
        "consumer": lambda s: consumer_throughput.run(
            s, events=sizes.consumer_events, rounds=sizes.consumer_rounds, profile=profile
        ),
        "latency": lambda s: latency.run(
            s,
            rates=sizes.latency_rates,
            seconds=sizes.latency_seconds,
            profile=profile,
            batch_rates=sizes.latency_batch_rates,
        ),
        "rss": lambda s: rss.run(s, backlogs=sizes.rss_backlogs, profile=profile),
        "databases": lambda s: databases.run(
            s, rows=sizes.db_rows, events=sizes.db_events, rounds=sizes.db_rounds, profile=profile
        ),
        "write_path": lambda s: write_path.run(
            s,
            seconds=sizes.write_seconds,
            connections=sizes.write_connections,
            rounds=sizes.write_rounds,
            profile=profile,
        ),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the harness check of `make test`)")
    parser.add_argument("--only", default="", help="comma-separated parts to run (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/bench)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    profile = "quick" if args.quick else "full"
    sizes = QUICK if args.quick else FULL
    chosen = parts(sizes, profile)
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(chosen)
        if unknown:
            parser.error(f"unknown parts {sorted(unknown)}; choose from {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in wanted}
    results: dict[str, Any] = {}
    with bench_stack() as stack:
        for name, part in chosen.items():
            started = time.monotonic()
            console.rule(f"{name} ({profile})")
            report = part(stack)
            path = report.emit(profile, args.out) if args.out else report.emit(profile)
            results[name] = report
            console.print(f"  [dim]{name}: {time.monotonic() - started:.0f} s; wrote {path}[/dim]")
    return results


if __name__ == "__main__":
    main()
