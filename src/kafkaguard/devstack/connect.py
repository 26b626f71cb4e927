"""Kafka Connect standalone with Debezium's PostgreSQL and MariaDB connectors, next to the local broker.

Jars come from ``connect-pom.xml`` (Maven Central); the connector's plugin archive is unpacked
onto ``plugin.path``. Offsets are kept in a file under the run folder, so a Connect process that
is killed and started again resumes from its last committed source offset (and the replication
slot keeps what it has not confirmed) — at-least-once, like kafkaguard's own relay.
"""

from __future__ import annotations

import json
import os
import signal
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kafkaguard.connect_security import FILE_PROVIDER, connect_security, keystore_pem, reference, secrets_text
from kafkaguard.devstack import process
from kafkaguard.devstack.jars import ensure_jars
from kafkaguard.devstack.java import java_argv, write_log4j2, write_properties
from kafkaguard.errors import DevStackError
from kafkaguard.kafka_security import KafkaSecurity


def ensure_connect(run_dir: Path) -> tuple[Path, Path]:
    """Return (class-path folder, plugin.path folder), fetching and unpacking them when needed."""
    jars = ensure_jars(run_dir, "connect-pom.xml", "connect-jars", expect="connect-runtime-*.jar")
    plugins = jars / "plugins"
    done = plugins / ".unpacked"
    archives = sorted(jars.glob("debezium-connector-*-plugin.tar.gz"))
    names = "\n".join(a.name for a in archives)
    if not archives:
        raise DevStackError(f"Debezium's plugin archives are missing from {jars}")
    # Unpacked once per set of archives: a checkout that adds a connector unpacks again.
    if not done.exists() or done.read_text() != names:
        plugins.mkdir(exist_ok=True)
        for archive in archives:
            with tarfile.open(archive) as tar:
                tar.extractall(plugins, filter="data")
        done.write_text(names)
    return jars, plugins


def wait_streaming(bootstrap: str, heartbeat_topic: str, *, timeout: float = 90.0, log: Path | None = None) -> None:
    """Wait until the connector has sent a heartbeat to ``heartbeat_topic``: it reads the change log
    now, and its next offset commit (every second here) records where it reads.

    Why MariaDB's connector needs this and PostgreSQL's does not: the PostgreSQL connector creates its
    replication slot as the task starts, and the slot keeps every change from then on. The MariaDB
    connector first reads the table structure, and until it streams no binlog position is recorded
    anywhere: Connect killed in that stretch starts again from the binlog's end, past the rows committed
    meanwhile. Writers should start once this returns (the dev tooling and the tests wait here).
    """
    from confluent_kafka import Consumer  # the broker's client, as the dev stack's admin uses

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"kafkaguard-streaming-probe-{os.getpid()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    try:
        consumer.subscribe([heartbeat_topic])

        def heartbeat() -> bool:
            # errors (the topic not created yet, above all) mean "not yet"; the deadline reports the rest
            msg = consumer.poll(0.5)
            return msg is not None and msg.error() is None

        process.wait_until(heartbeat, timeout=timeout, what=f"a Debezium heartbeat on {heartbeat_topic}", log=log)
    finally:
        consumer.close()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600 from creation, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


@dataclass
class ConnectWorker:
    """One Connect standalone worker running one connector, with its REST API on ``rest_port``."""

    home: Path
    bootstrap: str
    rest_port: int
    jars: Path
    plugins: Path
    heap_mb: int = 512
    pid: int | None = None
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    """TLS/SASL of the worker's clients (:mod:`kafkaguard.connect_security`); default plaintext."""

    @property
    def log_file(self) -> Path:
        return self.home / "connect.log"

    @property
    def worker_file(self) -> Path:
        return self.home / "worker.properties"

    @property
    def secrets_file(self) -> Path:
        """Secrets the worker and connector configs refer to (FileConfigProvider); mode 0600."""
        return self.home / "secrets.properties"

    @property
    def keystore_file(self) -> Path:
        return self.home / "keystore.pem"

    @property
    def connector_file(self) -> Path:
        return self.home / "connector.json"

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def _marker(self) -> str:
        return str(self.worker_file)

    def _worker_props(self) -> dict[str, str]:
        """The worker's properties, security aside (a distributed worker changes the offset store)."""
        return {
            "bootstrap.servers": self.bootstrap,
            "listeners": self.rest,
            "rest.advertised.host.name": "127.0.0.1",
            "plugin.path": str(self.plugins),
            "offset.storage.file.filename": str(self.home / "offsets.dat"),
            "offset.flush.interval.ms": "1000",
            # The outbox router emits a string key (aggregateid) and the JSON payload: the same bytes
            # kafkaguard's relay produces.
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "header.converter": "org.apache.kafka.connect.storage.SimpleHeaderConverter",
            # Durable, ordered delivery from Connect's producer too.
            "producer.enable.idempotence": "true",
            "producer.acks": "all",
            "producer.max.in.flight.requests.per.connection": "5",
        }

    def _write_worker(self) -> dict[str, str]:
        props = self._worker_props()
        secured = connect_security(self.security, secrets_file=self.secrets_file, keystore_file=self.keystore_file)
        # The provider always: the connector's database password is a reference too.
        props.update({**FILE_PROVIDER, **secured.worker})
        self.home.mkdir(parents=True, exist_ok=True)
        if secured.keystore is not None:
            _write_private(self.keystore_file, keystore_pem(*secured.keystore))
        write_properties(self.worker_file, props)
        write_log4j2(self.home / "log4j2.properties", {"org.reflections": "error"})
        return secured.secrets

    def _write_connector(self, connector: dict[str, Any], secrets: dict[str, str]) -> None:
        """Write the connector JSON with its database password as a provider reference, and the
        secrets file (the worker's and the connector's secrets), both 0600."""
        connector = {**connector, "config": dict(connector.get("config", {}))}
        password = connector["config"].pop("database.password", None)
        if password:  # the config refers to it; the secrets file holds it
            secrets = {**secrets, "database.password": str(password)}
            connector["config"]["database.password"] = reference(self.secrets_file, "database.password")
        elif password is not None:
            connector["config"]["database.password"] = password
        _write_private(self.secrets_file, secrets_text(secrets))
        _write_private(self.connector_file, json.dumps(connector, indent=2))

    def is_running(self) -> bool:
        return self.pid is not None and process.pid_matches(self.pid, self._marker())

    def start(self, connector: dict[str, Any], *, timeout: float = 120.0) -> None:
        """Start the worker with ``connector`` (name + config) and wait until its task runs."""
        if self.is_running():
            return
        process.require_free_port(self.rest_port, "Kafka Connect REST")
        self._write_connector(connector, self._write_worker())
        argv = java_argv(
            self.jars,
            "org.apache.kafka.connect.cli.ConnectStandalone",
            str(self.worker_file),
            str(self.connector_file),
            heap_mb=self.heap_mb,
            log4j2=self.home / "log4j2.properties",
        )
        self.pid = process.spawn(argv, log=self.log_file)
        name = str(connector["name"])
        process.wait_until(
            lambda: self.task_state(name) == "RUNNING",
            timeout=timeout,
            what=f"Debezium connector {name!r} on {self.rest}",
            log=self.log_file,
            interval=0.5,
            alive=lambda: self.pid is not None and process.is_alive(self.pid),
        )

    def task_state(self, name: str) -> str | None:
        """The state of the connector's first task (``RUNNING``, ``FAILED``...), or None when unknown."""
        try:
            resp = httpx.get(f"{self.rest}/connectors/{name}/status", timeout=2)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        tasks = resp.json().get("tasks") or []
        return str(tasks[0].get("state")) if tasks else None

    def stop(self) -> None:
        if self.pid is not None:
            process.terminate(self.pid, self._marker(), timeout=30)

    def kill(self) -> None:
        """SIGKILL the worker (a crash) and wait until its REST port is released."""
        if self.pid is not None:
            process.kill_hard(self.pid, self._marker())
            process.wait_until(
                lambda: process.port_is_free(self.rest_port), timeout=30, what="Connect's REST port to be released"
            )

    def pause(self) -> None:
        if self.pid is not None:
            process.signal_pid(self.pid, signal.SIGSTOP)
