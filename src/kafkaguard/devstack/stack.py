"""The dev stack: a Kafka cluster and a PostgreSQL server (and/or a MariaDB one) sharing one run folder.

Its state (ports, pids, cluster id) is kept in ``<run dir>/stack.json`` so that ``kafkaguard dev``
commands run one after another act on the same processes. ``up`` is idempotent: running
processes are left alone and dead ones are started again with their data kept.

Which databases run is the stack's ``databases`` (:data:`DATABASES`): PostgreSQL alone by default,
MariaDB alone, or both. ``up`` with more databases than a saved stack has adds them to it.

A document store (FerretDB, MongoDB wire protocol: :mod:`kafkaguard.devstack.ferretdb`) runs beside
them when asked (``dev up --mongo``); it never holds an outbox, so it is not one of ``databases``
and never gives ``database_url``: its URL is ``mongo_url``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.devstack.kafka import KafkaCluster, new_cluster_id
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.devstack.secure import (
    DENIED_TOPIC,
    GROUP_PREFIX,
    MECHANISM,
    PRINCIPALS,
    TOPIC_PREFIX,
    UNREADABLE_TOPIC,
    Material,
)
from kafkaguard.errors import ConfigurationError

RUN_DIR_ENV = "KAFKAGUARD_RUN_DIR"


def default_run_dir() -> Path:
    """``$KAFKAGUARD_RUN_DIR``, else ``.run`` in the current directory (git-ignored)."""
    return Path(os.environ.get(RUN_DIR_ENV, ".run")).resolve()


POSTGRES = "postgres"
MARIADB = "mariadb"
MONGO = "mongo"
DATABASES = (POSTGRES, MARIADB)
"""The dev stack's database servers, in the order they start (and the first one's URL is ``database_url``)."""


def databases_for(choice: str) -> tuple[str, ...]:
    """The servers ``dev up --database`` names: ``postgres``, ``mariadb`` or ``both``."""
    if choice == "both":
        return DATABASES
    if choice in DATABASES:
        return (choice,)
    raise ConfigurationError(f"--database must be postgres, mariadb or both, not {choice!r}")


SECURE_FOLDER = "secure"  # the secured stack's run folder, inside the plain stack's


@dataclass(frozen=True)
class StackPorts:
    """Loopback ports of a stack; broker ``i`` uses ``kafka + 2i`` and its controller ``kafka + 2i + 1``.

    A secured stack (:data:`SECURE_PORTS`: 39092 and 35432, so it runs beside the plain one) serves
    mTLS on ``kafka + 2i`` and SCRAM over TLS on ``kafka + 100 + i`` (:meth:`sasl_ports`).
    """

    kafka: int = 29092
    postgres: int = 25432
    mariadb: int = 23306
    mongo: int = 27117
    """FerretDB; its debug handler listens on ``mongo + 1``."""

    def sasl_ports(self, brokers: int) -> list[int]:
        return [self.kafka + 100 + i for i in range(brokers)]

    def broker_ports(self, brokers: int) -> tuple[list[int], list[int]]:
        return (
            [self.kafka + 2 * i for i in range(brokers)],
            [self.kafka + 2 * i + 1 for i in range(brokers)],
        )


SECURE_PORTS = StackPorts(kafka=39092, postgres=35432, mariadb=33306)


def secure_run_dir(run_dir: Path | None = None) -> Path:
    """Where ``dev ... --secure`` keeps its stack: ``<run dir>/secure``."""
    return (run_dir or default_run_dir()).resolve() / SECURE_FOLDER


class DevStack:
    """Kafka (1 or 3 KRaft nodes) and PostgreSQL 15 and/or MariaDB 10.11 under ``run_dir``.

    ``postgres`` is always described (its port is saved) but runs only when ``databases`` names it;
    ``mariadb`` is None until a ``dev up --database mariadb|both`` adds it; ``mongo`` (FerretDB) is
    None until a ``dev up --mongo`` adds it.
    """

    def __init__(
        self,
        run_dir: Path,
        kafka: KafkaCluster,
        postgres: PostgresServer,
        mariadb: MariaDbServer | None = None,
        databases: tuple[str, ...] = (POSTGRES,),
        mongo: FerretDbServer | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.kafka = kafka
        self.postgres = postgres
        self.mariadb = mariadb
        self.mongo = mongo
        self.databases = tuple(d for d in DATABASES if d in databases)
        if MARIADB in self.databases and mariadb is None:
            raise ConfigurationError("a stack with MariaDB needs its server")

    @property
    def secure(self) -> bool:
        return self.kafka.secure is not None

    def client_security(self, principal: str, mechanism: str = "scram") -> dict[str, str]:
        """librdkafka settings (``bootstrap.servers`` included) for ``principal`` (relay, consumer,
        operator) over ``scram`` (SASL_SSL) or ``mtls`` (SSL) on a secured stack."""
        if self.kafka.secure is None:
            raise ConfigurationError("this dev stack is not secured; start one with `kafkaguard dev up --secure`")
        if principal not in PRINCIPALS:
            raise ConfigurationError(f"principal must be one of {', '.join(PRINCIPALS)}, not {principal!r}")
        bootstrap = self.kafka.sasl_bootstrap if mechanism == "scram" else self.kafka.bootstrap
        return {"bootstrap.servers": bootstrap, **self.kafka.secure.client(principal, mechanism)}

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    @classmethod
    def create(
        cls,
        run_dir: Path,
        *,
        brokers: int = 1,
        ports: StackPorts | None = None,
        secure: bool = False,
        databases: tuple[str, ...] | None = None,
        mongo: bool = False,
    ) -> DevStack:
        """Describe a new stack (nothing is started); reuses the saved one when it exists.

        ``databases``: the servers to run (default: PostgreSQL for a new stack, the saved stack's
        otherwise); naming one a saved stack lacks adds it. ``mongo``: run FerretDB too (a saved
        stack that has it keeps it).
        """
        if brokers not in (1, 3):
            raise ConfigurationError(f"--brokers must be 1 or 3, not {brokers}")
        if secure and databases is not None and MARIADB in databases:
            raise ConfigurationError("the secured stack has no MariaDB yet (its TLS is not set up); drop --secure")
        if secure and mongo:
            raise ConfigurationError("the secured stack has no document store (no TLS for FerretDB yet); drop --secure")
        ports = ports or (SECURE_PORTS if secure else StackPorts())
        existing = cls.load(run_dir)
        if existing is not None:
            if existing.kafka.size != brokers:
                raise ConfigurationError(
                    f"a {existing.kafka.size}-broker stack already lives in {run_dir}; "
                    "run `kafkaguard dev down --wipe` first to change the number of brokers"
                )
            if existing.secure != secure:
                raise ConfigurationError(
                    f"a {'secured' if existing.secure else 'plaintext'} stack already lives in {run_dir}"
                )
            if databases is not None:
                existing.add_databases(databases, ports)
            if mongo and existing.mongo is None:
                existing.mongo = _ferretdb(run_dir, ports.mongo)
            return existing
        kafka_ports, controller_ports = ports.broker_ports(brokers)
        material = _material(run_dir) if secure else None
        if material is not None:
            material.ensure()
        kafka = KafkaCluster(
            home=run_dir / "kafka", ports=kafka_ports, controller_ports=controller_ports, cluster_id=new_cluster_id(),
            secure=material, sasl_ports=ports.sasl_ports(brokers) if secure else None,
        )  # fmt: skip
        kafka.build(_jars_root(run_dir))
        postgres = PostgresServer(home=run_dir / "postgres", port=ports.postgres, tls=material)
        wanted = databases or (POSTGRES,)
        mariadb = MariaDbServer(home=run_dir / MARIADB, port=ports.mariadb) if MARIADB in wanted else None
        return cls(run_dir, kafka, postgres, mariadb, wanted, _ferretdb(run_dir, ports.mongo) if mongo else None)

    def add_databases(self, databases: tuple[str, ...], ports: StackPorts) -> None:
        """Run ``databases`` too: one the stack lacks gets its port from ``ports``; those it has keep theirs."""
        if MARIADB in databases and self.mariadb is None:
            self.mariadb = MariaDbServer(home=self.run_dir / MARIADB, port=ports.mariadb)
        if POSTGRES in databases and POSTGRES not in self.databases:
            self.postgres = PostgresServer(home=self.postgres.home, port=ports.postgres, tls=self.postgres.tls)
        self.databases = tuple(d for d in DATABASES if d in self.databases or d in databases)

    @classmethod
    def load(cls, run_dir: Path) -> DevStack | None:
        """Return the stack saved in ``run_dir``, or None when there is none."""
        path = run_dir / "stack.json"
        if not path.exists():
            return None
        state: dict[str, Any] = json.loads(path.read_text())
        material = _material(run_dir) if state.get("secure") else None
        kafka = KafkaCluster(
            home=run_dir / "kafka",
            ports=list(state["kafka_ports"]),
            controller_ports=list(state["controller_ports"]),
            cluster_id=str(state["cluster_id"]),
            secure=material,
            sasl_ports=list(state["sasl_ports"]) if material is not None else None,
        )
        kafka.build(_jars_root(run_dir), pids=list(state["kafka_pids"]))
        postgres = PostgresServer(
            home=run_dir / "postgres", port=int(state["postgres_port"]), pid=state["postgres_pid"], tls=material
        )
        mariadb = None
        if state.get("mariadb_port") is not None:
            mariadb = MariaDbServer(
                home=run_dir / MARIADB, port=int(state["mariadb_port"]), pid=state.get("mariadb_pid")
            )
        databases = tuple(state.get("databases", [POSTGRES]))  # a stack saved before MariaDB: PostgreSQL only
        mongo = None
        if state.get("mongo_port") is not None:
            mongo = _ferretdb(run_dir, int(state["mongo_port"]), pid=state.get("mongo_pid"))
        return cls(run_dir, kafka, postgres, mariadb, databases, mongo)

    def save(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "cluster_id": self.kafka.cluster_id,
            "kafka_ports": self.kafka.ports,
            "controller_ports": self.kafka.controller_ports,
            "kafka_pids": [n.pid for n in self.kafka.nodes],
            "postgres_port": self.postgres.port,
            "postgres_pid": self.postgres.pid,
            "secure": self.secure,
            "sasl_ports": self.kafka.sasl_ports,
            "databases": list(self.databases),
            "mariadb_port": self.mariadb.port if self.mariadb is not None else None,
            "mariadb_pid": self.mariadb.pid if self.mariadb is not None else None,
            "mongo_port": self.mongo.port if self.mongo is not None else None,
            "mongo_pid": self.mongo.pid if self.mongo is not None else None,
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def up(self, *, timeout: float = 120.0) -> None:
        """Start whatever is not running and wait until Kafka and the stack's databases answer."""
        try:
            if POSTGRES in self.databases:
                self.postgres.start(timeout=timeout)
            if self.mariadb is not None and MARIADB in self.databases:
                self.mariadb.start(timeout=timeout)
                self.save()
            if self.mongo is not None:
                self.mongo.start(timeout=timeout)
                self.save()
            for node in self.kafka.nodes:
                node.launch()
                self.save()  # record pids as soon as they exist, so `down` can always stop them
            self.kafka.start(timeout=timeout)
        finally:
            self.save()

    def down(self, *, wipe: bool = False) -> None:
        """Stop Kafka and the databases; with ``wipe`` also delete their data and the saved state."""
        self.kafka.stop()
        self.postgres.stop()
        if self.mariadb is not None:
            self.mariadb.stop()
        if self.mongo is not None:
            self.mongo.stop()
        self.save()
        if wipe:
            for sub in ("kafka", "postgres", MARIADB, MONGO, "secrets"):
                shutil.rmtree(self.run_dir / sub, ignore_errors=True)
            self.state_file.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """Return what a client needs (bootstrap servers, database URL) and what is running."""
        for node in self.kafka.nodes:
            node.is_running()  # refreshes a stale pid (a node restarted by another process)
        self.postgres.is_running()
        return {
            "bootstrap_servers": self.kafka.bootstrap,
            "database_url": self.database_url(self.databases[0]) if self.databases else None,
            "databases": list(self.databases),
            "brokers": [
                {
                    "node_id": n.node_id,
                    "address": n.bootstrap,
                    "pid": n.pid,
                    "running": n.is_running(),
                    "paused": n.is_paused(),
                    "log": str(n.log_file),
                }
                for n in self.kafka.nodes
            ],
            "postgres": {
                "address": f"127.0.0.1:{self.postgres.port}",
                "pid": self.postgres.pid,
                "running": self.postgres.is_running(),
                "log": str(self.postgres.log_file),
            },
            **self._mariadb_status(),
            **self._mongo_status(),
            "run_dir": str(self.run_dir),
            "secure": self.secure,
            **(self._secure_status() if self.kafka.secure is not None else {}),
        }

    def database_url(self, database: str) -> str | None:
        """The SQLAlchemy URL of ``database`` (``postgres`` | ``mariadb``), None before its first start."""
        if database == MARIADB:
            server = self.mariadb
            return server.url() if server is not None and server.password_file.exists() else None
        return self.postgres.url() if self.postgres.password_file.exists() else None

    def _mariadb_status(self) -> dict[str, Any]:
        if self.mariadb is None:
            return {}
        return {
            "mariadb_url": self.database_url(MARIADB),
            "mariadb": {
                "address": f"127.0.0.1:{self.mariadb.port}",
                "pid": self.mariadb.pid,
                "running": self.mariadb.is_running(),
                "log": str(self.mariadb.log_file),
            },
        }

    def _mongo_status(self) -> dict[str, Any]:
        if self.mongo is None:
            return {}
        running = self.mongo.is_running()  # first: it refreshes the pid of a server another process started
        return {
            "mongo_url": self.mongo.url(),
            "mongo": {
                "address": f"127.0.0.1:{self.mongo.port}",
                "pid": self.mongo.pid,
                "running": running,
                "log": str(self.mongo.log_file),
                "server": "FerretDB (MongoDB wire protocol)",
            },
        }

    def _secure_status(self) -> dict[str, Any]:
        material = self.kafka.secure
        assert material is not None
        principals = {}
        for name in PRINCIPALS:
            cred = material.credential(name)
            principals[name] = {
                "username": name,
                "password": material.password(name),
                "password_file": str(material.password_file(name)),
                "certificate_file": str(cred.certificate),
                "key_file": str(cred.key),
            }
        return {
            "sasl_ssl_bootstrap_servers": self.kafka.sasl_bootstrap,
            "ssl_bootstrap_servers": self.kafka.bootstrap,
            "sasl_mechanism": MECHANISM,
            "ca_file": str(material.ca_file),
            "principals": principals,
            "acl_prefixes": {"topics": TOPIC_PREFIX, "groups": GROUP_PREFIX, "transactional_ids": GROUP_PREFIX},
            "denied_topic": DENIED_TOPIC,
            "unreadable_topic": UNREADABLE_TOPIC,
        }


def _ferretdb(run_dir: Path, port: int, pid: int | None = None) -> FerretDbServer:
    """The stack's FerretDB: its files in ``<run dir>/mongo``, the binary built into ``run_dir``."""
    return FerretDbServer(run_dir=_jars_root(run_dir), home=run_dir / MONGO, port=port, debug_port=port + 1, pid=pid)


def _material(run_dir: Path) -> Material:
    return Material(run_dir / "secrets")


def _jars_root(run_dir: Path) -> Path:
    """The secured stack (``<run dir>/secure``) shares the plain stack's jar cache: one fetch per pom."""
    return run_dir.parent if run_dir.name == SECURE_FOLDER else run_dir
