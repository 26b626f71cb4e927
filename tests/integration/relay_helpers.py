"""Helpers for relay tests: run a relay in a thread or a process, poll with deadlines, read events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer

from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.stores.by_database import outbox_store_for
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_topics import TopicRegistry


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> float:
    """Poll ``condition`` until true; return seconds waited; fail the test with ``what`` at the deadline."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - started


def scalar(db: TestDatabase, sql: str, params: Any = None) -> Any:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


@contextmanager
def relay_thread(db: TestDatabase | TestMariaDatabase, bootstrap: str, **settings: Any) -> Iterator[Relay]:
    """Run one in-process relay on ``db`` (its outbox adapter chosen by the URL) until the block ends."""
    relay = Relay.for_database(
        outbox=outbox_store_for(db.url, schema=db.schema),
        bootstrap=bootstrap,
        settings=RelaySettings(**{"poll_interval": 0.5, **settings}),
        topics=TopicRegistry(bootstrap, partitions=3),
        for_aggregate=topic_for,
        name=f"test-relay-{uuid.uuid4().hex[:4]}",
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=60)
        assert not thread.is_alive(), "the relay did not stop"


def start_relay_process(db: TestDatabase, bootstrap: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """Start ``python -m kafkaguard relay`` as its own OS process (logs to ``log``)."""
    environ = {**os.environ, "KAFKAGUARD_TOPICS__PARTITIONS": "3", **env}
    cmd = [sys.executable, "-m", "kafkaguard", "relay", "--url", db.url, "--bootstrap-servers", bootstrap]
    cmd += ["--poll-interval", "0.5", "--name", log.stem]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environ)


class TopicReader:
    """A plain confluent-kafka consumer that keeps every message read so far, in offset order per partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"reader-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe([topic])
        self.messages: list[Any] = []

    def poll_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.2):
                if not msg.error():
                    self.messages.append(msg)

    def event_ids(self) -> set[str]:
        return {header(m, "event_id") for m in self.messages}

    def per_key_first_seen(self) -> dict[str, list[str]]:
        """For each key, event ids in the order read with duplicates removed (first copy wins)."""
        seen: set[str] = set()
        order: dict[str, list[str]] = {}
        for m in self.messages:
            eid = header(m, "event_id")
            if eid not in seen:
                seen.add(eid)
                order.setdefault(m.key().decode(), []).append(eid)
        return order

    def close(self) -> None:
        self.consumer.close()


def header(msg: Any, name: str) -> str:
    for k, v in msg.headers() or []:
        if k == name:
            return str(v.decode())
    raise KeyError(name)


def payload(msg: Any) -> Any:
    return json.loads(msg.value())
