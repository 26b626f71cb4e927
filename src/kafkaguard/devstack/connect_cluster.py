"""Kafka Connect in distributed mode: a cluster of workers sharing one group, connectors registered over REST.

This is how Debezium runs in production (and under Strimzi): the workers keep the connector
configurations, the source offsets and the task states in three Kafka topics
(``<group>-configs``, ``-offsets``, ``-status``), agree on who runs which task through a consumer
group (``group.id``), and take over the tasks of a worker that leaves or dies. Connectors are
registered with ``PUT /connectors/<name>/config`` on any worker's REST API.

Each worker of :class:`ConnectCluster` is a :class:`~kafkaguard.devstack.connect.ConnectWorker`
with the same converters, producer settings, ``plugin.path`` and config providers as the standalone
one; only the offset store and the group differ. Dev timings, chosen so that a killed worker's task
moves within ~20 s instead of minutes:

- ``session.timeout.ms=6000`` (the broker's minimum) and ``heartbeat.interval.ms=1000``: a worker
  killed -9 leaves the group after 6 s;
- ``scheduled.rebalance.max.delay.ms=10000`` (default 300000, five minutes): how long the leader keeps
  a departed worker's tasks unassigned in case it comes back (incremental cooperative rebalancing).

The connector's database password is a FileConfigProvider reference to :attr:`ConnectCluster.password_file`,
which every worker reads (:meth:`ConnectCluster.write_password`): the configuration stored in the
config topic and shown by the REST API holds the reference only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kafkaguard.connect_security import secrets_text
from kafkaguard.devstack import process
from kafkaguard.devstack.connect import ConnectWorker, _write_private
from kafkaguard.devstack.java import java_argv
from kafkaguard.errors import DevStackError, StartTimeoutError
from kafkaguard.kafka_security import KafkaSecurity

DISTRIBUTED_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
DEV_TIMINGS = {
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "1000",
    "rebalance.timeout.ms": "20000",
    "scheduled.rebalance.max.delay.ms": "10000",
    "offset.flush.interval.ms": "1000",
}
"""Short group timings for the dev cluster (see the module docstring); production keeps Connect's defaults."""


@dataclass
class DistributedWorker(ConnectWorker):
    """One worker of a distributed Connect cluster (``group_id``), REST on 127.0.0.1:``rest_port``."""

    group_id: str = "kafkaguard-connect"
    replication: int = 1
    """Replication factor of the three internal topics (1 on a one-broker dev cluster)."""

    @property
    def worker_id(self) -> str:
        """The id Connect's status endpoint names this worker by (``host:port`` of its advertised REST)."""
        return f"127.0.0.1:{self.rest_port}"

    def _worker_props(self) -> dict[str, str]:
        props = super()._worker_props()
        del props["offset.storage.file.filename"]
        rf = str(self.replication)
        props.update(
            {
                "group.id": self.group_id,
                "rest.advertised.port": str(self.rest_port),
                "rest.advertised.listener": "http",
                "config.storage.topic": f"{self.group_id}-configs",
                "config.storage.replication.factor": rf,
                "offset.storage.topic": f"{self.group_id}-offsets",
                "offset.storage.replication.factor": rf,
                "offset.storage.partitions": "5",
                "status.storage.topic": f"{self.group_id}-status",
                "status.storage.replication.factor": rf,
                "status.storage.partitions": "1",
                **DEV_TIMINGS,
            }
        )
        return props

    def launch(self) -> None:
        """Start the worker process (it joins the group on its own); see :meth:`ConnectCluster.start`."""
        if self.is_running():
            return
        process.require_free_port(self.rest_port, "Kafka Connect REST")
        _write_private(self.secrets_file, secrets_text(self._write_worker()))
        argv = java_argv(
            self.jars,
            DISTRIBUTED_MAIN,
            str(self.worker_file),
            heap_mb=self.heap_mb,
            log4j2=self.home / "log4j2.properties",
        )
        self.pid = process.spawn(argv, log=self.log_file)

    def ready(self) -> bool:
        """True once the worker's REST API answers ``GET /connectors`` (it has joined and read the config topic)."""
        try:
            return httpx.get(f"{self.rest}/connectors", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


@dataclass
class ConnectCluster:
    """Distributed Kafka Connect: ``len(rest_ports)`` workers in one group, each with its own home and REST port."""

    home: Path
    bootstrap: str
    rest_ports: list[int]
    jars: Path
    plugins: Path
    group_id: str = "kafkaguard-connect"
    heap_mb: int = 512
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    workers: list[DistributedWorker] = field(init=False)

    def __post_init__(self) -> None:
        self.workers = [
            DistributedWorker(
                self.home / f"worker{i}",
                self.bootstrap,
                port,
                self.jars,
                self.plugins,
                heap_mb=self.heap_mb,
                security=self.security,
                group_id=self.group_id,
            )
            for i, port in enumerate(self.rest_ports)
        ]

    @property
    def topics(self) -> list[str]:
        """The three internal topics the workers keep configs, offsets and task states in."""
        return [f"{self.group_id}-{kind}" for kind in ("configs", "offsets", "status")]

    @property
    def password_file(self) -> Path:
        """The properties file every worker reads the connector's database password from (FileConfigProvider)."""
        return self.home / "db.properties"

    def write_password(self, password: str, key: str = "password") -> None:
        """Write ``key=password`` to :attr:`password_file`, mode 0600 (the workers resolve the reference from it)."""
        _write_private(self.password_file, secrets_text({key: password}))

    def live(self) -> list[DistributedWorker]:
        return [w for w in self.workers if w.is_running()]

    def worker(self, worker_id: str) -> DistributedWorker:
        """The worker the status endpoint calls ``worker_id``."""
        for w in self.workers:
            if w.worker_id == worker_id:
                return w
        raise DevStackError(f"no worker {worker_id!r} in this Connect cluster")

    def start(self, *, timeout: float = 120.0) -> None:
        """Start every worker and wait until each one's REST API answers (all joined the group)."""
        for w in self.workers:
            w.launch()
        for w in self.workers:
            process.wait_until(
                w.ready, timeout=timeout, what=f"Connect worker {w.worker_id} to join group {self.group_id}",
                log=w.log_file, interval=0.5, alive=w.is_running,
            )  # fmt: skip

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """``method path`` on the first live worker that answers (any worker forwards to the leader)."""
        for w in self.live():
            try:
                return httpx.request(method, f"{w.rest}{path}", timeout=10, **kwargs)
            except httpx.HTTPError:
                continue
        return None

    def register(self, connector: dict[str, Any], *, timeout: float = 120.0) -> None:
        """``PUT /connectors/<name>/config`` with ``connector``'s config, retried while the group rebalances
        (409) or a worker is not ready; then wait until the connector and its task are RUNNING."""
        name = str(connector["name"])
        deadline = time.monotonic() + timeout
        last = "no worker answered"
        while True:
            resp = self._request("PUT", f"/connectors/{name}/config", json=dict(connector["config"]))
            if resp is not None and resp.status_code in (200, 201):
                break
            if resp is not None:
                last = f"{resp.status_code} {resp.text[:300]}"
                if resp.status_code not in (404, 409, 500, 503):  # a bad configuration: say so at once
                    raise DevStackError(f"Connect refused connector {name!r}: {last}")
            if time.monotonic() >= deadline:
                raise DevStackError(f"could not register connector {name!r} within {timeout:.0f}s: {last}")
            time.sleep(0.5)
        self.wait_running(name, timeout=max(1.0, deadline - time.monotonic()))

    def status(self, name: str) -> dict[str, Any] | None:
        """``GET /connectors/<name>/status`` (connector and task states, their ``worker_id``), or None."""
        resp = self._request("GET", f"/connectors/{name}/status")
        if resp is None or resp.status_code != 200:
            return None
        body: dict[str, Any] = resp.json()
        return body

    def task_worker(self, name: str) -> str | None:
        """The ``worker_id`` running task 0 of ``name`` when it is RUNNING, else None."""
        status = self.status(name)
        tasks = (status or {}).get("tasks") or []
        if not tasks or tasks[0].get("state") != "RUNNING":
            return None
        if (status or {}).get("connector", {}).get("state") != "RUNNING":
            return None
        return str(tasks[0]["worker_id"])

    def wait_running(self, name: str, *, timeout: float, not_on: str | None = None) -> str:
        """Wait until the connector and task 0 are RUNNING (on a worker other than ``not_on``); return its worker_id.

        A FAILED task is reported at once with its trace.
        """
        found: list[str] = []

        def running() -> bool:
            status = self.status(name)
            tasks = (status or {}).get("tasks") or []
            if tasks and tasks[0].get("state") == "FAILED":
                raise DevStackError(f"task 0 of {name!r} failed: {str(tasks[0].get('trace', ''))[:2000]}")
            worker = self.task_worker(name)
            if worker is not None and worker != not_on:
                found.append(worker)
                return True
            return False

        where = f" on a worker other than {not_on}" if not_on else ""
        try:
            process.wait_until(running, timeout=timeout, what=f"connector {name!r} RUNNING{where}", interval=0.25)
        except StartTimeoutError as exc:
            raise DevStackError(f"{exc}; last status: {self.status(name)}") from exc
        return found[-1]

    def kill(self) -> None:
        """SIGKILL every worker (data is kept in the internal topics)."""
        for w in self.workers:
            w.kill()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
