"""Part 3: txoutbox's relay as a second Python peer row (optional: ``pip install -e '.[bench]'``).

``txoutbox`` (PyPI, "storage-agnostic Transactional Outbox relay for asyncio") ships only the relay:
its README asks for the ``postgres`` extra (asyncpg, for its ``PostgresStorage`` adapter) and a Kafka
client of your choice in the publish function (its "Kafka in three lines" uses aiokafka's
``AIOKafkaProducer``). The peer runs as its own process (``python -m bench.peer_txoutbox URL SCHEMA
BOOTSTRAP READY``, :func:`main`): the README's quick start — ``PostgresStorage(pool)`` on an asyncpg
pool with ``create_schema()``, ``Relay(outbox, publish).run(handle_signals=True)`` with the default
:class:`RelayConfig` (``batch_size=50``, ``concurrency=10``, strict per-key ordering) — plus its
"Not polling: LISTEN/NOTIFY" section (``notify_channel`` and ``listen(relay.wake)``), so an idle relay
wakes at the backlog's commit as ours and faststream-outbox's do, instead of after up to 5 s of
back-off. The producer gets the durable settings this benchmark requires of everyone:
``acks="all"``, ``enable_idempotence=True``.

Rows go in its own table (``tx_outbox``, its schema, in a schema of their own), pre-filled in one
transaction with the same 200-byte JSON payloads and 1,000 keys as ours; each row's topic is the
bench topic. Timed as ours: from the commit of the backlog, with the relay already running, until
every row is ``done`` (its default ``delete_on_ack=False`` marks rows instead of deleting them; a
row is acked only after ``send_and_wait`` returned). Then the topic is read back and the run fails
unless every row's payload is on it.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer

from bench.common import BenchDb, Stack, new_schema, new_topic, payload_sql, python_env, stop, wait_until
from kafkaguard.transports.kafka_config import consumer_config

TABLE = "tx_outbox"


def available() -> str | None:
    """``None`` when the peer can run here, else why not."""
    try:
        for name in ("txoutbox", "asyncpg", "aiokafka"):
            importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError as exc:
        return f"{exc.name} is not installed (pip install -e '.[bench]')"
    return None


def version() -> str:
    return importlib.metadata.version("txoutbox")


def prefill(db: BenchDb, topic: str, rows: int, keys: int = 1000) -> None:
    """``rows`` rows in txoutbox's table, one transaction: same payloads and keys as ours."""
    with db.connect(autocommit=False) as conn:
        conn.execute(
            f"INSERT INTO {db.schema}.{TABLE} (topic, key, payload)"  # noqa: S608
            f" SELECT %s, 'key-' || lpad((i %% %s)::text, 4, '0'), convert_to(({payload_sql()})::text, 'UTF8')"
            " FROM generate_series(1000000::bigint, %s::bigint) AS i",
            (topic, keys, 1_000_000 + rows - 1),
        )
        conn.commit()


def numbers_on_topic(bootstrap: str, topic: str, rows: int, timeout: float = 60) -> set[int]:
    """The payload numbers (``n``) of the messages on ``topic``, read from the start until ``rows``
    distinct ones were seen or ``timeout`` passed (at-least-once: duplicates are allowed)."""
    consumer = Consumer(consumer_config(bootstrap, f"txo-check-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic])
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < rows and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    seen.add(int(json.loads(m.value())["n"]))
    finally:
        consumer.close()
    return seen


def relay_rate(stack: Stack, rows: int, logs: Path) -> float:
    """Events/s of txoutbox's relay process draining ``rows`` (commit → every row done); raises
    unless every row is on the topic afterwards."""
    db = new_schema(stack, "tx")
    topic = new_topic(stack, f"tx{uuid.uuid4().hex[:8]}")
    ready = logs / f"peer-{db.schema}.ready"
    cmd = [sys.executable, "-m", "bench.peer_txoutbox", stack.server.url(driver="postgresql"), db.schema]
    cmd += [stack.bootstrap, str(ready)]
    with (logs / f"peer-{db.schema}.log").open("wb") as out:
        proc = subprocess.Popen(cmd, env=python_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: ready.exists() or proc.poll() is not None, 60, "txoutbox's relay to start", 0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"txoutbox's relay exited with {proc.returncode}; see {logs}")
        prefill(db, topic, rows)
        committed = time.perf_counter()

        def done() -> bool:
            return bool(db.scalar(f"SELECT NOT EXISTS (SELECT 1 FROM {TABLE} WHERE status <> 'done')"))  # noqa: S608

        wait_until(lambda: done() or proc.poll() is not None, 1800, "txoutbox's relay to drain its outbox", 0.05)
        elapsed = time.perf_counter() - committed
        if proc.poll() is not None:
            raise RuntimeError(f"txoutbox's relay exited with {proc.returncode}; see {logs}")
    finally:
        stop(proc)
        ready.unlink(missing_ok=True)
    seen = numbers_on_topic(stack.bootstrap, topic, rows)
    if len(seen) != rows:
        raise RuntimeError(f"txoutbox's relay: {len(seen)} of {rows} rows arrived on {topic}")
    return rows / elapsed


async def main(dsn: str, schema: str, bootstrap: str, ready: str) -> None:
    """The relay: txoutbox's README quick start with LISTEN/NOTIFY and aiokafka (durable settings)."""
    import asyncpg  # type: ignore[import-untyped]  # the peer's own dependencies, imported only here
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
    from txoutbox import OutboxMessage, Relay
    from txoutbox.adapters.postgres import PostgresStorage

    pool = await asyncpg.create_pool(dsn)
    outbox = PostgresStorage(pool, table=TABLE, schema=schema, notify_channel=f"{schema}_outbox")
    await outbox.create_schema()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()

    async def publish(message: OutboxMessage) -> None:
        await producer.send_and_wait(message.topic, message.payload, key=message.key.encode() if message.key else None)

    relay = Relay(outbox, publish)
    listener = await outbox.listen(relay.wake)
    Path(ready).touch()
    try:
        await relay.run(handle_signals=True)
    finally:
        await listener.close()
        await producer.stop()
        await pool.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
