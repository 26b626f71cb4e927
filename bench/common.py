"""Shared pieces of the benchmarks: the stack, schemas, outbox pre-fill, subprocesses, RSS, reports.

Every benchmark runs on a throw-away Kafka broker and PostgreSQL on free loopback ports (never the
dev ports), with the durable settings: PostgreSQL ``synchronous_commit=on``, ``fsync=on``; Kafka
``acks=all`` with idempotence (kafkaguard's :data:`~kafkaguard.transports.kafka_config.SAFE_PRODUCER`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.table import Table

from kafkaguard.db import migrate
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.kafka_security import from_environ
from kafkaguard.testing import stacks
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.transports.kafka_admin import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
REPORT_DIR = ROOT / "reports" / "bench"
PAYLOAD_BYTES = 200  # size of the JSON payload (the Kafka value) of every bench event
console = Console(width=140)


@dataclass(frozen=True)
class Stack:
    """A running broker and PostgreSQL for one benchmark session."""

    bootstrap: str
    server: PostgresServer


def client_security() -> dict[str, Any]:
    """librdkafka TLS/SASL settings from ``KAFKAGUARD_KAFKA_SECURITY__*`` (empty when unset), so the
    benchmark's own clients connect like the workers it starts."""
    return from_environ(os.environ).client_config()


@contextmanager
def bench_stack() -> Iterator[Stack]:
    """A dedicated single broker and PostgreSQL on free loopback ports, removed afterwards."""
    with stacks.postgres_server() as pg, stacks.kafka_cluster(1) as kafka:
        yield Stack(kafka.bootstrap, pg)


@dataclass(frozen=True)
class BenchDb(TestDatabase):
    """One schema of the bench database, with kafkaguard's tables migrated in (``url`` and
    ``conninfo`` put the schema first on the search_path, as the test fixtures' databases do)."""

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, autocommit=autocommit)

    def execute(self, sql: str, params: Any = None) -> None:
        with self.connect() as conn:
            conn.execute(sql, params)

    def scalar(self, sql: str, params: Any = None) -> Any:
        with self.connect() as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None


def new_schema(stack: Stack, prefix: str = "b") -> BenchDb:
    """A fresh schema with kafkaguard's migrations applied."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    migrate.upgrade(stack.server.url(), schema=schema)
    return BenchDb(stack.server, schema)


def new_topic(stack: Stack, aggregate: str, partitions: int = 3) -> str:
    """Create ``outbox.event.<aggregate>`` (the relay's default topic for that aggregate type)."""
    topic = f"outbox.event.{aggregate}"
    ensure_topics(stack.bootstrap, [topic], partitions=partitions, replication=1, overrides=client_security())
    return topic


def payload_sql(size: int = PAYLOAD_BYTES) -> str:
    """SQL for a JSON object of exactly ``size`` bytes compact-encoded, numbered by ``i``.

    ``{"n":<i 7 digits>,"data":"xxx..."}``: 8 + 7 + 10 + filler + 2 bytes.
    """
    filler = size - len('{"n":0000000,"data":""}')
    return f"jsonb_build_object('n', lpad(i::text, 7, '0')::int, 'data', repeat('x', {filler}))"


def prefill(
    db: BenchDb, rows: int, *, aggregate: str, keys: int = 1000, chunk: int = 200_000, event_type: str | None = None
) -> float:
    """Insert ``rows`` outbox rows (``keys`` keys, 200-byte payloads) in one transaction; return seconds.

    One transaction, so every row becomes visible at the same instant (the commit) and relays that
    are already running all see the whole backlog at once. Numbers in the payload are 7 digits so
    every payload has the same size.
    """
    started = time.monotonic()
    with db.connect(autocommit=False) as conn:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            conn.execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)"  # noqa: S608
                f" SELECT gen_random_uuid(), %s, 'key-' || lpad((i %% %s)::text, 4, '0'), %s, {payload_sql()}"
                " FROM generate_series(%s::bigint, %s::bigint) AS i",
                (aggregate, keys, event_type or f"{aggregate}.changed", 1_000_000 + start, 1_000_000 + start + n - 1),
            )
        conn.commit()
    return time.monotonic() - started


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``condition`` until true; return seconds waited; raise at the deadline."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def outbox_empty(db: BenchDb) -> Callable[[], bool]:
    """A cheap check (one connection, kept open) that the outbox has no row left."""
    conn = db.connect()

    def check() -> bool:
        row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM outbox)").fetchone()
        done = bool(row and row[0])
        if done:
            conn.close()
        return done

    return check


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a bench subprocess: the repo on PYTHONPATH (for ``bench.*`` modules)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def start_relay(db: BenchDb, bootstrap: str, log: Path, *, name: str, **env: str) -> subprocess.Popen[bytes]:
    """``python -m kafkaguard relay`` on ``db`` with its default settings, as its own process."""
    cmd = [sys.executable, "-m", "kafkaguard", "relay", "--url", db.url, "--bootstrap-servers", bootstrap]
    cmd += ["--name", name, "--log-level", "WARNING"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=python_env(**env), cwd=ROOT)


def shard_owners(db: BenchDb) -> list[int]:
    """Shards held per relay connection of ``db``'s schema (sorted counts)."""
    return db.relay_shard_owners()


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM ``proc`` and wait (SIGKILL after ``timeout`` s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB from ``/proc/<pid>/status``; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    values = {
        k: int(v.split()[0])
        for k, _, v in (line.partition(":") for line in text.splitlines())
        if k in ("VmRSS", "VmHWM")
    }
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@dataclass
class Report:
    """One part's table (printed with Rich) and JSON (``reports/bench/<part>.json``)."""

    part: str
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append(list(cells))

    def table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for c in self.columns:
            table.add_column(c, justify="left" if c == self.columns[0] else "right")
        for row in self.rows:
            table.add_row(*(fmt(c) for c in row))
        return table

    def emit(self, profile: str, out_dir: Path = REPORT_DIR) -> Path:
        """Print the table and notes; write the JSON; return its path."""
        console.print(self.table())
        for note in self.notes:
            console.print(f"  [dim]{note}[/dim]")
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.part}{'' if profile == 'full' else '-' + profile}.json"
        doc = {
            "part": self.part,
            "title": self.title,
            "profile": profile,
            "machine": machine(),
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
            "data": self.data,
        }
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        return path


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
