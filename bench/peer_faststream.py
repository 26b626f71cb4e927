"""Part 3: faststream-outbox's relay as a peer row (optional: ``pip install -e '.[bench]'``).

The peer runs as its own process (:mod:`bench.peer_faststream_relay`): faststream-outbox's
``OutboxBroker`` on asyncpg (its LISTEN/NOTIFY wake-up) with its own subscriber defaults
(``fetch_batch_size=10``, ``max_workers=1``), relaying each row to Kafka through FastStream's
``KafkaBroker`` (aiokafka) with the durable settings this benchmark requires of everyone:
``acks="all"``, ``enable_idempotence=True``. Rows go in its own table (``fs_outbox``, from its
``make_outbox_table``), pre-filled with the same 200-byte JSON payloads and 1,000 keys (the key in
a row header, set as the Kafka key by the relay handler). Timed as ours: from the commit of the
backlog, with the relay already running, to an empty table.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.common import BenchDb, Stack, new_schema, new_topic, payload_sql, python_env, stop, wait_until

TABLE = "fs_outbox"
QUEUE = "bench"


def available() -> str | None:
    """``None`` when the peer can run here, else why not."""
    try:
        importlib.metadata.version("faststream-outbox")
        importlib.metadata.version("aiokafka")
        importlib.metadata.version("asyncpg")
    except importlib.metadata.PackageNotFoundError as exc:
        return f"{exc.name} is not installed (pip install -e '.[bench]')"
    return None


def version() -> str:
    return importlib.metadata.version("faststream-outbox")


def prefill(db: BenchDb, rows: int, keys: int = 1000) -> None:
    """``rows`` rows in faststream-outbox's table, one transaction: same payloads and keys as ours."""
    with db.connect(autocommit=False) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (queue, payload, headers)"  # noqa: S608
            f" SELECT %s, convert_to(({payload_sql()})::text, 'UTF8'),"
            " jsonb_build_object('content-type', 'application/json', 'key', 'key-' || lpad((i %% %s)::text, 4, '0'))"
            " FROM generate_series(1000000::bigint, %s::bigint) AS i",
            (QUEUE, keys, 1_000_000 + rows - 1),
        )
        conn.commit()


def relay_rate(stack: Stack, rows: int, logs: Path) -> float:
    db = new_schema(stack, "fs")
    topic = new_topic(stack, f"fs{uuid.uuid4().hex[:8]}")
    url = stack.server.url(driver="postgresql+asyncpg")
    cmd = [sys.executable, "-m", "bench.peer_faststream_relay", url, db.schema, stack.bootstrap, topic]
    with (logs / f"peer-{db.schema}.log").open("wb") as out:
        proc = subprocess.Popen(cmd, env=python_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: db.scalar("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)), 60, "the peer's table", 0.2)
        time.sleep(2)  # the peer has no "ready" signal: give its subscriber time to start LISTENing
        prefill(db, rows)
        committed = time.perf_counter()

        def empty() -> bool:
            return bool(db.scalar(f"SELECT NOT EXISTS (SELECT 1 FROM {TABLE})"))  # noqa: S608

        wait_until(empty, 1800, "the peer relay to drain its outbox", 0.05)
        elapsed = time.perf_counter() - committed
        if proc.poll() is not None:
            raise RuntimeError(f"the peer relay exited with {proc.returncode}; see {logs}")
    finally:
        stop(proc)
    return rows / elapsed
