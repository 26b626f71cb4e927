"""The dev stack's document store (issue 18 item 7): ``kafkaguard dev up --mongo`` builds and runs
FerretDB beside Kafka and PostgreSQL, reports it, hands out its URL, survives a kill -9 with its data
and stops with the stack."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pymongo

from kafkaguard.devstack import process
from kafkaguard.testing.stacks import scratch_root
from tests.integration.dev_stack_helpers import listening, run_dev

BUILD_TIMEOUT = 1900.0
"""A first ``--mongo`` builds FerretDB (minutes with a cold Go cache): the build's own limit applies."""


def _cli(args: list[str], run_dir: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_dev(args, run_dir, check=check, timeout=BUILD_TIMEOUT)


def _status(run_dir: Path) -> dict[str, object]:
    info: dict[str, object] = json.loads(_cli(["dev", "status", "--json"], run_dir).stdout)
    return info


def _free_pair() -> int:
    """A free port whose successor is free too (FerretDB's debug handler; a broker's controller)."""
    port = process.free_ports(1)[0]
    while not process.port_is_free(port + 1):
        port = process.free_ports(1)[0]
    return port


def test_dev_up_mongo_status_env_kill_keeps_data_and_down() -> None:
    run_dir = scratch_root() / f"cli-mongo-{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    kafka_port, mongo_port, pg_port = _free_pair(), _free_pair(), process.free_ports(1)[0]
    base = ["dev", "up", "--kafka-port", str(kafka_port), "--postgres-port", str(pg_port)]
    try:
        refused = _cli([*base, "--database", "mongo"], run_dir, check=False)
        assert refused.returncode == 1 and "--mongo" in refused.stderr and not (run_dir / "stack.json").exists()

        up = [*base, "--mongo", "--mongo-port", str(mongo_port)]
        shown = _cli(up, run_dir).stdout
        assert f"mongodb://127.0.0.1:{mongo_port}/kafkaguard" in shown and "ferretdb" in shown
        info = _status(run_dir)
        mongo = info["mongo"]
        assert isinstance(mongo, dict)
        assert mongo["address"] == f"127.0.0.1:{mongo_port}" and mongo["running"] is True
        assert info["mongo_url"] == f"mongodb://127.0.0.1:{mongo_port}/kafkaguard"
        assert info["databases"] == ["postgres"] and str(info["database_url"]).startswith("postgresql+psycopg://")
        assert listening(mongo_port) == ["0100007F"] and listening(mongo_port + 1) == ["0100007F"]
        _cli(up, run_dir)  # idempotent: the same server
        assert _status(run_dir)["mongo"] == mongo

        env = _cli(["dev", "env", "--database", "mongo"], run_dir).stdout
        assert f"export KAFKAGUARD_DATABASE_URL={info['mongo_url']}" in env.replace("'", "")
        assert f"export KAFKAGUARD_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}" in env.replace("'", "")
        assert _cli(["dev", "env", "--database", "mongo", "--psql"], run_dir, check=False).returncode == 1

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(str(info["mongo_url"]))
        try:
            client.get_database("kafkaguard")["probe"].insert_one({"_id": "kept", "n": 1})
        finally:
            client.close()

        _cli(["dev", "mongo", "kill"], run_dir)
        assert not process.pid_matches(int(str(mongo["pid"])), "ferretdb")
        down_info = _status(run_dir)["mongo"]
        assert isinstance(down_info, dict) and down_info["running"] is False
        _cli(["dev", "up"], run_dir)  # a saved stack keeps its document store: started again
        again = _status(run_dir)["mongo"]
        assert isinstance(again, dict) and again["running"] is True and again["pid"] != mongo["pid"]
        client = pymongo.MongoClient(str(info["mongo_url"]), serverSelectionTimeoutMS=5000)
        try:
            assert client.get_database("kafkaguard")["probe"].find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}
        finally:
            client.close()

        _cli(["dev", "down"], run_dir)
        assert not process.pid_matches(int(str(again["pid"])), "ferretdb")
        stopped = _status(run_dir)["mongo"]
        assert isinstance(stopped, dict) and stopped["running"] is False
    finally:
        _cli(["dev", "down", "--wipe"], run_dir, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
    assert not (run_dir / "mongo").exists()


def test_a_stack_without_the_document_store_says_how_to_add_it(tmp_path: Path) -> None:
    assert _cli(["dev", "mongo", "stop"], tmp_path, check=False).returncode == 1  # no stack at all
    secured = _cli(["dev", "up", "--secure", "--mongo"], tmp_path, check=False)
    assert secured.returncode == 1 and "drop --secure" in secured.stderr
