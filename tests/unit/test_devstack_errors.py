"""The dev stack's failures are reported with what happened and what to do."""

import socket
from pathlib import Path

import pytest

from kafkaguard.devstack import process
from kafkaguard.devstack.stack import DevStack, StackPorts
from kafkaguard.devstack.tools import require
from kafkaguard.errors import ConfigurationError, PortInUseError, StartTimeoutError, ToolMissingError


def test_missing_tool_names_the_tool_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolMissingError, match="'mvn' was not found.*apt-get install -y maven"):
        require("mvn")


def test_taken_port_is_reported() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not process.port_is_free(port)
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 .*Kafka node 1"):
            process.require_free_port(port, "Kafka node 1")


def test_timeout_names_the_log(tmp_path: Path) -> None:
    log = tmp_path / "broker.log"
    with pytest.raises(StartTimeoutError, match=f"within 0 s; read its log: {log}"):
        process.wait_until(lambda: False, timeout=0.2, what="thing", log=log, interval=0.05)


def test_dead_process_is_reported_before_the_deadline(tmp_path: Path) -> None:
    with pytest.raises(StartTimeoutError, match="the process exited"):
        process.wait_until(lambda: False, timeout=60, what="thing", alive=lambda: False)


def test_brokers_must_be_one_or_three(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="1 or 3"):
        DevStack.create(tmp_path, brokers=2)


def test_broker_ports_are_laid_out_in_pairs() -> None:
    assert StackPorts(kafka=100).broker_ports(3) == ([100, 102, 104], [101, 103, 105])


def test_cluster_ids_never_start_with_a_dash() -> None:
    """``kafka-storage format -t -abc`` reads a leading dash as an option; Kafka's own ids avoid it."""
    from kafkaguard.devstack.kafka import new_cluster_id

    assert not any(new_cluster_id().startswith("-") for _ in range(2000))


def test_promtool_is_built_once_then_found_in_the_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kafkaguard.devstack.tools import ensure_promtool, find_promtool, promtool_path

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no go, no promtool
    assert find_promtool(tmp_path) is None
    with pytest.raises(ToolMissingError, match="'go' was not found"):
        ensure_promtool(tmp_path)
    built = promtool_path(tmp_path)
    built.parent.mkdir(parents=True)
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert ensure_promtool(tmp_path) == built == find_promtool(tmp_path)  # no go needed the second time
