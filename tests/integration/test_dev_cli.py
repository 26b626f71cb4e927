"""`kafkaguard dev` end to end: idempotent up/down, status, and a plain client (kcat) on the broker."""

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkaguard.devstack import process
from kafkaguard.testing.stacks import scratch_root
from tests.integration.dev_stack_helpers import run_dev

run = functools.partial(run_dev, timeout=240)


@pytest.fixture
def cli_run_dir() -> Iterator[Path]:
    path = scratch_root() / f"cli-{os.getpid()}"
    path.mkdir(exist_ok=True)
    yield path
    run(["dev", "down", "--wipe"], path, check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_up_twice_kcat_round_trip_and_down_twice(cli_run_dir: Path) -> None:
    kafka_port = process.free_ports(1)[0]
    while not (process.port_is_free(kafka_port + 1)):
        kafka_port = process.free_ports(1)[0]
    pg_port = process.free_ports(1)[0]
    up = ["dev", "up", "--kafka-port", str(kafka_port), "--postgres-port", str(pg_port)]
    run(up, cli_run_dir)
    first = json.loads(run(["dev", "status", "--json"], cli_run_dir).stdout)
    run(up, cli_run_dir)  # second time: nothing to do, same processes
    second = json.loads(run(["dev", "status", "--json"], cli_run_dir).stdout)
    assert second["brokers"][0]["pid"] == first["brokers"][0]["pid"]
    assert second["postgres"]["pid"] == first["postgres"]["pid"]
    assert first["bootstrap_servers"] == f"127.0.0.1:{kafka_port}"
    assert first["database_url"].startswith("postgresql+psycopg://kafkaguard:")
    assert first["database_url"].endswith(f"@127.0.0.1:{pg_port}/kafkaguard")

    kcat = shutil.which("kcat")
    assert kcat, "kcat (Debian package) is required; `make test` installs it"
    bootstrap = first["bootstrap_servers"]
    from kafkaguard.transports.kafka_admin import ensure_topics

    ensure_topics(bootstrap, ["kcat.check"], partitions=1)
    subprocess.run(
        [kcat, "-b", bootstrap, "-P", "-t", "kcat.check", "-K", ":", "-H", "event_id=abc"],
        input="key-1:{\"hello\": \"kafka\"}\n", text=True, check=True, timeout=30,
    )  # fmt: skip
    out = subprocess.run(
        [kcat, "-b", bootstrap, "-C", "-t", "kcat.check", "-o", "beginning", "-c", "1", "-e", "-f", "%k|%s|%h\n"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    assert out.strip() == 'key-1|{"hello": "kafka"}|event_id=abc'

    run(["dev", "down"], cli_run_dir)
    status = json.loads(run(["dev", "status", "--json"], cli_run_dir).stdout)
    assert not status["brokers"][0]["running"] and not status["postgres"]["running"]
    run(["dev", "down"], cli_run_dir)  # nothing running: still succeeds


def test_down_with_nothing_ever_started(tmp_path: Path) -> None:
    result = run(["dev", "down"], tmp_path)
    assert "nothing to stop" in result.stdout


def test_up_reports_a_taken_port(cli_run_dir: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        result = run(["dev", "up", "--kafka-port", str(taken), "--postgres-port", str(process.free_ports(1)[0])],
                     cli_run_dir, check=False)  # fmt: skip
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1" in result.stderr
