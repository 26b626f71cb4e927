"""Run ``python -m kafkaguard`` as an operator would, and write dead letters as the consumer does."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from kafkaguard import raw_headers
from kafkaguard.db.safe_text import bytes_text
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase
from tests.integration.consumer_helpers import REPO

APP = "tests.integration.consumer_app:registry"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m kafkaguard ARGS`` with this tree's sources first on the path."""
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "KAFKAGUARD_DATABASE_URL": "",
        **(env or {}),
    }
    full_env.pop("KAFKAGUARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "kafkaguard", *args], cwd=REPO, env=full_env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def db_args(db: TestDatabase) -> list[str]:
    return ["--url", db.server.url(), "--schema", db.schema]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STARTUP_BANNER = re.compile(r"^\S+ \S+ INFO kafkaguard\.startup: ")


def assert_one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command failed with ``code``, printing one line on stderr and no traceback; return it.

    A worker's start-up lines (INFO: the Kafka and database it uses, Kafka answering) may come first."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not STARTUP_BANNER.match(line)]
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def insert_listener_dead_letter(
    conn: Connection,
    group: str,
    event: Event,
    *,
    offset: int,
    status: str = "pending",
    topic: str = "t-cli",
    extra_headers: list[tuple[str, bytes | None]] | None = None,
) -> int:
    """A listener dead letter of ``event`` as the consumer writes one (raw bytes, readable headers)."""
    headers = [*event.kafka_headers(), *(extra_headers or [])]
    readable = {k: bytes_text(v) for k, v in headers}
    row: Any = conn.execute(
        text(
            'INSERT INTO kafka_listener_dead_letters (consumer_group, topic, partition, "offset", key, raw_key, '
            "headers, raw_value, raw_headers, event_id, type, reason, error_class, error_message, status) VALUES "
            "(:group, :topic, 0, :offset, :key, :raw_key, CAST(:headers AS jsonb), :raw_value, :raw_headers, "
            ":event_id, :type, :reason, 'tests.integration.consumer_app.BrokenKeyError', 'broken', :status) "
            "RETURNING id"
        ),
        {
            "group": group,
            "topic": topic,
            "offset": offset,
            "key": event.key,
            "raw_key": event.key.encode(),
            "headers": json.dumps(readable),
            "raw_value": event.payload_bytes(),
            "raw_headers": raw_headers.encode(headers),
            "event_id": event.event_id,
            "type": event.type,
            "reason": "parked" if status == "parked" else "handler_error",
            "status": status,
        },
    ).scalar_one()
    return int(row)


def snapshot(db: TestDatabase, table: str = "kafka_listener_dead_letters") -> list[tuple[Any, ...]]:
    """Every column that an operator action changes, per row, to compare before and after."""
    with psycopg.connect(db.conninfo) as conn:
        return conn.execute(
            f"SELECT id, status, attempts, next_attempt_at, history::text, updated_at, restored_at FROM {table} "
            "ORDER BY id"
        ).fetchall()
