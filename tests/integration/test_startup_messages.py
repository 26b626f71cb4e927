"""Startup and failure messages of ``kafkaguard relay`` and ``consume``, run as a user runs them.

Real processes against the real Kafka and PostgreSQL: each misconfiguration ends with its one
line and exit code within a bounded time (issue 14, "Acceptance"), a wrong bootstrap address
gives one line per interval instead of a flood, and a consumer restarted after SIGKILL says why
it waits for its partitions (and, with static membership, does not wait).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from kafkaguard.cli.dev import psql_url
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration.cli_operator_helpers import closed_port

REPO = Path(__file__).resolve().parents[2]
HANDLERS = "tests.integration.consumer_app:registry"
WRONG_PASSWORD = "wrong-pw-4711"
KAFKA_INTERVAL = 10.0  # kafkaguard.transports.kafka_logging.LOG_INTERVAL

COMMANDS = {
    "relay": ["relay"],
    "consume": ["consume", HANDLERS, "--group", "startup-test", "--topic", "startup-test"],
}


def _env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAFKAGUARD_")}
    return {**base, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **env}


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m kafkaguard ARGS`` with only ``env``'s KAFKAGUARD_* variables."""
    return subprocess.run(
        [sys.executable, "-m", "kafkaguard", *args],
        env=_env(env), capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "kafkaguard", *args], env=_env(env), cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The command exited with ``code``, its last stderr line is its only ``error:`` line; return it."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:], lines
    return errors[0]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["relay", "consume"])
def test_a_typo_in_a_variable_stops_the_command(command: str, migrated_database: TestDatabase) -> None:
    started = time.monotonic()
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_BOOTSTRAP_SERVER": "127.0.0.1:1"}
    line = error_line(run(COMMANDS[command], env), 1)
    assert line == (
        "error: unknown setting KAFKAGUARD_BOOTSTRAP_SERVER in the environment; did you mean "
        "KAFKAGUARD_BOOTSTRAP_SERVERS?"
    )
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("command", ["relay", "consume"])
def test_a_nested_toml_typo_stops_the_command(command: str, migrated_database: TestDatabase, tmp_path: Path) -> None:
    config = tmp_path / "kafkaguard.toml"
    config.write_text('[consumer]\ngroup = "billing"\n')
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_CONFIG": str(config)}
    line = error_line(run(COMMANDS[command], env), 1)
    assert line.startswith(f"error: unknown setting consumer.group in {config}")
    assert line.endswith("did you mean consumer.group_id?")


@pytest.mark.parametrize("command", ["relay", "consume"])
def test_a_missing_config_file_stops_the_command(command: str, migrated_database: TestDatabase, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_CONFIG": str(missing)}
    line = error_line(run(COMMANDS[command], env), 1)
    assert line.startswith(f"error: KAFKAGUARD_CONFIG names {missing}, which does not exist")


def test_consume_needs_a_group(migrated_database: TestDatabase) -> None:
    proc = run(["consume", HANDLERS, "--topic", "t"], {"KAFKAGUARD_DATABASE_URL": migrated_database.url})
    line = error_line(proc, 2)
    assert line.startswith("error: pass --group (or set KAFKAGUARD_CONSUMER__GROUP_ID)")


# -- credentials ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["relay", "consume"])
def test_a_wrong_database_password_is_fatal_at_start(command: str, migrated_database: TestDatabase) -> None:
    server = migrated_database.server
    url = server.url().replace(server.password_file.read_text().strip(), WRONG_PASSWORD)
    started = time.monotonic()
    proc = run([*COMMANDS[command], "--url", url, "--schema", migrated_database.schema], {}, timeout=60)
    elapsed = time.monotonic() - started
    line = error_line(proc, 1)
    assert line == (
        f"error: PostgreSQL at 127.0.0.1:{server.port}/kafkaguard refused the login of user 'kafkaguard' "
        '(password authentication failed for user "kafkaguard"): check the user and password in --url / '
        "KAFKAGUARD_DATABASE_URL"
    )
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr
    assert "reconnecting" not in proc.stderr and "unreachable" not in proc.stderr
    assert elapsed < 30, elapsed


@pytest.mark.parametrize(
    ("command", "client_setting"),
    [("relay", "PRODUCER"), ("consume", "CONSUMER_CLIENT"), ("relay", "KAFKA_SECURITY"), ("consume", "KAFKA_SECURITY")],
)
def test_kafka_refusing_the_login_is_fatal_at_start(
    command: str, client_setting: str, migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    """A SASL client against the plaintext broker: the broker refuses the SASL handshake (librdkafka's
    _AUTHENTICATION, as for a wrong password), which must stop the worker, not be waited out."""
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "app",
            "sasl.password": WRONG_PASSWORD}  # fmt: skip
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap}
    if client_setting == "KAFKA_SECURITY":  # the settings block, not raw librdkafka keys
        block = {"PROTOCOL": "SASL_PLAINTEXT", "SASL_MECHANISM": "PLAIN", "USERNAME": "app", "PASSWORD": WRONG_PASSWORD}
        env.update({f"KAFKAGUARD_KAFKA_SECURITY__{k}": v for k, v in block.items()})
    else:
        env[f"KAFKAGUARD_{client_setting}"] = json.dumps(sasl)
    started = time.monotonic()
    proc = run(COMMANDS[command], env, timeout=60)
    line = error_line(proc, 1)
    assert line.startswith(f"error: Kafka at {kafka_bootstrap} refused the credentials (SASL"), line
    assert "on its SASL_PLAINTEXT/PLAIN listener: check kafka_security" in line, line
    assert line.endswith("or the producer / consumer_client overrides"), line
    assert WRONG_PASSWORD not in proc.stdout + proc.stderr
    assert time.monotonic() - started < 30


# -- wrong bootstrap address ------------------------------------------------------------------------
def test_a_wrong_bootstrap_gives_one_line_per_interval(
    migrated_database: TestDatabase, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Before: 741 lines in 25 s (raw librdkafka lines on stderr). Now: a banner, then one line per
    10 s naming the address and the reason, until SIGTERM ends the command cleanly."""
    port = closed_port()
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    logs = {name: tmp_path / f"{name}.log" for name in COMMANDS}
    started = time.monotonic()
    for name, args in COMMANDS.items():
        processes.append(start(args, env, logs[name]))

    def unreachable(name: str) -> list[str]:
        return [line for line in logs[name].read_text().splitlines() if "is unreachable" in line]

    wait_for(lambda: all(len(unreachable(n)) >= 2 for n in COMMANDS), 60, "two 'unreachable' lines from each")
    for proc in processes:
        proc.send_signal(signal.SIGTERM)
    for proc in processes:
        assert proc.wait(30) == 0
    elapsed = time.monotonic() - started
    for name in COMMANDS:
        lines = logs[name].read_text().splitlines()
        what = "relay" if name == "relay" else "consumer"
        assert re.search(
            rf"INFO kafkaguard.startup: {what} starting: Kafka 127.0.0.1:{port}; PostgreSQL 127.0.0.1:\d+/kafkaguard "
            rf"as kafkaguard, schema {migrated_database.schema}(;|$)",
            lines[0],
        ), lines[0]
        assert not any(line.startswith("%") for line in lines), "raw librdkafka lines on stderr"
        found = unreachable(name)
        assert len(found) <= elapsed / KAFKA_INTERVAL + 1, (elapsed, found)
        assert len(lines) <= len(found) + 4, lines  # banner, signal, and at most two more
        client = "relay" if name == "relay" else "consumer of group startup-test"
        expected = (
            f"Kafka at 127.0.0.1:{port} is unreachable for the {client} (Connect to ipv4#127.0.0.1:{port} failed:"
        )
        assert all(expected in line for line in found), found


# -- partitions after a restart ---------------------------------------------------------------------
def _assigned(log: Path) -> bool:
    return "assigned group=" in log.read_text()


def test_a_consumer_restarted_after_a_kill_says_why_it_waits_for_partitions(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:  # fmt: skip
    topic = topics("restart")
    group = f"restart-{topic}"
    env = {
        "KAFKAGUARD_DATABASE_URL": migrated_database.url,
        "KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKAGUARD_CONSUMER_CLIENT": json.dumps({"session.timeout.ms": 8000}),  # the wait, shortened for the test
    }
    args = ["consume", HANDLERS, "--group", group, "--topic", topic]
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    processes.append(first := start(args, env, first_log))
    wait_for(lambda: _assigned(first_log), 60, "the first consumer's partitions")
    first.kill()
    first.wait(10)
    processes.append(second := start(args, env, second_log))
    wait_for(lambda: _assigned(second_log), 60, "the restarted consumer's partitions")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    text = second_log.read_text()
    assert re.search(
        rf"WARNING kafkaguard.consumer.kafka: group {group}: waiting \d+ s for partitions: the group is rebalancing "
        r"and Kafka waits for every member to rejoin; a member that stopped without leaving \(killed\) is waited for "
        r"until its session times out \(session.timeout.ms = 8 s\)",
        text,
    ), text
    assert re.search(rf"group {group}: got 3 partitions after waiting \d+ s", text), text


def test_a_static_member_restarted_after_a_kill_gets_its_partitions_at_once(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:  # fmt: skip
    topic = topics("static")
    group = f"static-{topic}"
    env = {"KAFKAGUARD_DATABASE_URL": migrated_database.url, "KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap}
    args = ["consume", HANDLERS, "--group", group, "--topic", topic, "--instance-id", "billing-0"]
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    processes.append(first := start(args, env, first_log))
    wait_for(lambda: _assigned(first_log), 60, "the first consumer's partitions")
    first.kill()
    first.wait(10)
    restarted = time.monotonic()
    processes.append(second := start(args, env, second_log))
    # Without static membership this takes the session timeout (45 s by default), as the test above shows.
    wait_for(lambda: _assigned(second_log), 30, "the restarted static member's partitions")
    waited = time.monotonic() - restarted
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    text = second_log.read_text()
    assert "instance id billing-0" in text.splitlines()[0]
    assert "waiting" not in text, text
    assert waited < 30, waited


# -- dev env ------------------------------------------------------------------------------------------
def test_the_psql_url_of_dev_env_is_one_libpq_takes(migrated_database: TestDatabase) -> None:
    """What `kafkaguard dev env --psql` prints for the stack's URL connects as psql would (libpq), on the schema."""
    url = psql_url(migrated_database.server.url(), migrated_database.schema)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_schema()").fetchone()
    assert row is not None and row[0] == migrated_database.schema
