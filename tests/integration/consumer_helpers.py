"""Running consumers for the tests: in-process worker threads and `kafkaguard consume` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from kafkaguard.consumer import Applier, HandlerRegistry, Worker
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.settings import ConsumerSettings, GroupProtocol
from kafkaguard.db.engine import sync_engine

REPO = Path(__file__).resolve().parents[2]


def wait_until(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``cond`` until true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def scalar(conninfo: str, sql: str, params: dict[str, Any] | None = None) -> Any:
    with psycopg.connect(conninfo, connect_timeout=3) as conn:
        row = conn.execute(sql, params or {}).fetchone()
    return row[0] if row else None


def rows(conninfo: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo, connect_timeout=3) as conn:
        return list(conn.execute(sql, params or {}).fetchall())


@dataclass
class RunningWorker:
    worker: Worker
    thread: threading.Thread

    def stop(self, timeout: float = 30) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"


def start_worker(
    bootstrap: str,
    url: str,
    schema: str | None,
    registry: HandlerRegistry,
    settings: ConsumerSettings,
    *,
    on_dead_letter: Callable[[Any, Any], None] | None = None,
) -> RunningWorker:
    engine = sync_engine(url, schema=schema, pool_size=2)
    applier = Applier(engine, registry, settings, stop=threading.Event(), on_dead_letter=on_dead_letter)
    # A 10 s session (classic) for prompt rebalances; the consumer protocol takes it from the broker.
    classic = settings.group_protocol is GroupProtocol.CLASSIC
    source = KafkaSource(
        bootstrap,
        settings.group_id,
        settings.topics,
        overrides={"session.timeout.ms": 10000} if classic else None,
        instance_id=settings.instance_id,
        group_protocol=settings.group_protocol,
    )
    worker = Worker(source, applier)
    thread = threading.Thread(target=worker.run, name=f"worker-{settings.group_id}", daemon=True)
    thread.start()
    return RunningWorker(worker, thread)


def spawn_cli_consumer(
    bootstrap: str,
    url: str,
    schema: str,
    group: str,
    topic: str,
    log: Path,
    *,
    args: Sequence[str] = (),
    client: dict[str, Any] | None = None,
    env_extra: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m kafkaguard consume tests.integration.consumer_app:registry`` as its own process
    (``args``: more command-line options; ``client``: the librdkafka overrides instead of the
    static-membership ones below; ``env_extra``: more environment, e.g. KAFKAGUARD_CONSUMER__* settings)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), **(env_extra or {})}
    # Static membership: a restarted process takes its partitions back without waiting for the
    # dead one's session to time out (10 kills would otherwise cost 10 session timeouts).
    default_client = {"session.timeout.ms": 6000, "group.instance.id": f"{group}-cli"}
    env["KAFKAGUARD_CONSUMER_CLIENT"] = json.dumps(default_client if client is None else client)
    cmd = [
        sys.executable, "-m", "kafkaguard", "consume", "tests.integration.consumer_app:registry",
        "--group", group, "--topic", topic, "--bootstrap-servers", bootstrap, "--url", url, "--schema", schema,
        "--log-level", "WARNING", *args,
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
