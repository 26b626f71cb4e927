"""Apache Kafka brokers in KRaft mode, run from Maven Central's jars by the local JVM.

A node runs as combined broker + controller. One node is a complete cluster; three nodes form a
quorum that survives one node down, with replication factor 3 and ``min.insync.replicas=2`` so
that ``acks=all`` is meaningful. Fault controls (stop, kill -9, pause, resume, restart) act on one
node and keep its data, so a restarted broker rejoins with its log intact.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from kafkaguard.devstack import process
from kafkaguard.devstack.jars import ensure_kafka_jars
from kafkaguard.devstack.java import java_argv, write_log4j2, write_properties
from kafkaguard.devstack.secure import Material, ensure_acls
from kafkaguard.errors import ConfigurationError, DevStackError

_LOGGERS = {"kafka": "info", "org.apache.kafka": "warn"}


def new_cluster_id() -> str:
    """Return a random KRaft cluster id (a base64url-encoded UUID, as ``kafka-storage random-uuid``).

    Like Kafka's ``Uuid.randomUuid``, never one starting with ``-``: ``kafka-storage format -t -x...``
    would read it as an option and fail (1 start in 64).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaBroker:
    """One KRaft node (broker and controller) with its own folder under the run directory.

    ``port`` serves clients (PLAINTEXT on 127.0.0.1; in a secured stack mTLS, with SCRAM over TLS
    on ``sasl_port``, see :mod:`.secure`); ``controller_port`` serves the quorum.
    """

    node_id: int
    port: int
    controller_port: int
    home: Path
    cluster_id: str
    voters: str
    replication: int
    jars: Path
    heap_mb: int = 512
    pid: int | None = None
    advertised_port: int | None = None  # clients are sent here (e.g. a proxy in front); default ``port``
    secure: Material | None = None  # the secured stack's TLS/SCRAM material (:mod:`.secure`); None: plaintext
    sasl_port: int | None = None  # secured only: the SASL_SSL listener (``port`` is then the mTLS one)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def _marker(self) -> str:
        return str(self.properties_file)

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        min_isr = 2 if self.replication >= 3 else 1
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.advertised_port or self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "3",
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(self.replication),
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": str(min_isr),
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            # Topics are created explicitly by kafkaguard (with the configured partitions and
            # replication); an auto-created topic would hide a missing create.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            # Fence a dead node within seconds so fault tests see leader changes quickly.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "replica.lag.time.max.ms": "10000",
            "unclean.leader.election.enable": "false",
        }
        if self.secure is not None and self.sasl_port is not None:
            props.update(
                self.secure.broker_properties(
                    ssl_port=self.port,
                    sasl_port=self.sasl_port,
                    controller_port=self.controller_port,
                    advertised_sasl_port=self.advertised_port or self.sasl_port,
                )
            )
        write_properties(self.properties_file, props)
        write_log4j2(self.home / "log4j2.properties", _LOGGERS)

    def _java(self, main: str, *args: str) -> list[str]:
        return java_argv(self.jars, main, *args, heap_mb=self.heap_mb, log4j2=self.home / "log4j2.properties")

    def _format_if_new(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        # "--cluster-id=<id>": a base64url id starting with "-" (1 in 64) would be read as an option.
        argv = self._java(
            "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster_id}", "-c", str(self.properties_file),
            *(self.secure.scram_arguments() if self.secure is not None else []),
        )  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            self.log_file.write_text(result.stdout + result.stderr)
            raise DevStackError(f"formatting KRaft storage for node {self.node_id} failed; read {self.log_file}")

    def is_running(self) -> bool:
        """Whether the node's JVM runs (adopting it when another process restarted it)."""
        if self.pid is not None and process.pid_matches(self.pid, self._marker()):
            return True
        adopted = process.find_pid(self._marker())
        if adopted is not None:
            self.pid = adopted
        return adopted is not None

    def is_paused(self) -> bool:
        return self.pid is not None and process.process_state(self.pid) in ("T", "t")

    def launch(self) -> None:
        """Start the node's JVM (formatting its storage the first time) without waiting."""
        if self.is_running():
            return
        process.require_free_port(self.port, f"Kafka node {self.node_id}")
        process.require_free_port(self.controller_port, f"Kafka controller {self.node_id}")
        if self.sasl_port is not None:
            process.require_free_port(self.sasl_port, f"Kafka node {self.node_id} (SASL_SSL)")
        self._write_config()
        self._format_if_new()
        self.pid = process.spawn(self._java("kafka.Kafka", str(self.properties_file)), log=self.log_file)

    def answers_metadata(self, *, expect_brokers: int = 1) -> bool:
        """Return True when this node answers a metadata request listing ``expect_brokers`` brokers."""
        if not process.port_accepts(self.port):
            return False
        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000, **self.admin_config()})
        try:
            meta = admin.list_topics(timeout=2)
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False
        return len(meta.brokers) >= expect_brokers

    def admin_config(self) -> dict[str, str]:
        """Client settings of the tooling's own super user on a secured node (empty when plaintext)."""
        return self.secure.admin_client() if self.secure is not None else {}

    def wait_ready(self, *, timeout: float = 90.0, expect_brokers: int = 1) -> None:
        """Poll until the node answers metadata; raise StartTimeoutError naming the log."""
        process.wait_until(
            lambda: self.answers_metadata(expect_brokers=expect_brokers),
            timeout=timeout,
            what=f"Kafka node {self.node_id} on {self.bootstrap}",
            log=self.log_file,
            interval=0.25,
            alive=lambda: self.pid is not None and process.is_alive(self.pid),
        )

    def stop(self) -> None:
        """Shut the node down cleanly (SIGTERM); its data is kept."""
        if self.pid is not None:
            process.terminate(self.pid, self._marker(), timeout=30)

    def kill(self) -> None:
        """Kill the node with SIGKILL (a crash); its data is kept."""
        if self.pid is not None:
            process.kill_hard(self.pid, self._marker())

    def pause(self) -> None:
        """Freeze the node with SIGSTOP: sockets stay open but nothing answers."""
        if self.is_running() and self.pid is not None:
            process.signal_pid(self.pid, signal.SIGSTOP)
            process.wait_until(self.is_paused, timeout=10, what=f"Kafka node {self.node_id} to stop (SIGSTOP)")

    def resume(self) -> None:
        """Continue a paused node with SIGCONT."""
        if self.pid is not None:
            process.signal_pid(self.pid, signal.SIGCONT)


@dataclass
class KafkaCluster:
    """One or three KRaft nodes on loopback; ``bootstrap`` lists every node."""

    home: Path
    ports: list[int]
    controller_ports: list[int]
    cluster_id: str = field(default_factory=new_cluster_id)
    heap_mb: int = 512
    nodes: list[KafkaBroker] = field(default_factory=list)
    advertised_ports: list[int] | None = None  # one per node: where clients are sent (a proxy's port)
    secure: Material | None = None  # secured: ``ports`` are mTLS listeners, ``sasl_ports`` SCRAM over TLS
    sasl_ports: list[int] | None = None

    def __post_init__(self) -> None:
        if len(self.ports) not in (1, 3) or len(self.controller_ports) != len(self.ports):
            raise ConfigurationError("a dev Kafka cluster has 1 or 3 brokers, each with a port and a controller port")
        if (self.secure is None) != (self.sasl_ports is None) or len(self.sasl_ports or self.ports) != len(self.ports):
            raise ConfigurationError("a secured dev Kafka cluster has TLS material and a SASL_SSL port per broker")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def sasl_bootstrap(self) -> str:
        """The SASL_SSL listeners of a secured cluster (empty when plaintext)."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sasl_ports or [])

    def admin_config(self) -> dict[str, str]:
        """Settings a client of the tooling adds to ``bootstrap`` (the super user's mTLS when secured)."""
        return self.secure.admin_client() if self.secure is not None else {}

    @property
    def size(self) -> int:
        return len(self.ports)

    def build(self, run_dir: Path, pids: list[int | None] | None = None) -> None:
        """Create the node objects (fetching the jars when needed); does not start anything."""
        jars = ensure_kafka_jars(run_dir)
        voters = ",".join(f"{i + 1}@127.0.0.1:{cp}" for i, cp in enumerate(self.controller_ports))
        self.nodes = [
            KafkaBroker(
                node_id=i + 1,
                port=p,
                controller_port=cp,
                home=self.home / f"node-{i + 1}",
                cluster_id=self.cluster_id,
                voters=voters,
                replication=self.size,
                jars=jars,
                heap_mb=self.heap_mb,
                pid=(pids[i] if pids else None),
                advertised_port=(self.advertised_ports[i] if self.advertised_ports else None),
                secure=self.secure,
                sasl_port=(self.sasl_ports[i] if self.sasl_ports else None),
            )
            for i, (p, cp) in enumerate(zip(self.ports, self.controller_ports, strict=True))
        ]

    def node(self, node_id: int) -> KafkaBroker:
        """Return node ``node_id`` (1-based, as Kafka numbers them)."""
        return self.nodes[node_id - 1]

    def start(self, *, timeout: float = 90.0) -> None:
        """Start every node that is not running and wait until all answer metadata."""
        for node in self.nodes:
            if not node.is_running():
                node.launch()
        for node in self.nodes:
            node.wait_ready(timeout=timeout, expect_brokers=self.size)
        if self.secure is not None:
            self._ensure_acls()

    def _ensure_acls(self) -> None:
        ensure_acls(AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3, **self.admin_config()}))

    def restart(self, node_id: int, *, timeout: float = 90.0) -> None:
        """Start node ``node_id`` again with its data kept and wait until it answers."""
        node = self.node(node_id)
        node.resume()
        node.stop()
        node.launch()
        node.wait_ready(timeout=timeout, expect_brokers=1)

    def stop(self) -> None:
        """Stop every node cleanly."""
        for node in reversed(self.nodes):
            node.resume()
        # Stop all at once: a three-node quorum losing nodes one by one waits on elections.
        for node in self.nodes:
            if node.pid is not None and node.is_running():
                process.signal_pid(node.pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def running(self) -> list[int]:
        """Return the ids of the nodes whose process is alive."""
        return [n.node_id for n in self.nodes if n.is_running()]
