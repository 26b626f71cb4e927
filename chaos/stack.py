"""The servers a chaos suite runs on: two database servers and Kafka clusters on free ports.

The writing service and the consuming service each get a database server of their own (PostgreSQL,
or MariaDB with ``database="mariadb"``), so "the database down for the publisher" and "for the
consumer" are separate faults. Kafka clusters
(1 broker, or 3 with RF 3 and ``min.insync.replicas=2``) are started on first use and shared by
the runs that need that size; every run uses its own topic, schemas and consumer group. A third,
single-broker cluster sits behind a :class:`TcpProxy` (advertised listener = the proxy's port) for
the network-cut scenario.

``secure=True`` runs the same on secured servers (:mod:`kafkaguard.devstack.secure`): brokers with
SCRAM-over-TLS and mTLS listeners only and ACLs, PostgreSQL over TLS only (``verify-full``). The
workers of a run connect over SCRAM, each as its own principal (the relay and the writer as
``relay``, consumers as ``consumer``); the suite's own clients (topic creation, injections, lag and
invariant checks, restore jobs) as ``operator``, through ``KAFKAGUARD_KAFKA_SECURITY__*`` set for the
suite's duration.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from types import TracebackType

from chaos.database import DIALECTS, ChaosDatabase, Dialect
from chaos.proxy import TcpProxy
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.devstack.process import free_ports
from kafkaguard.devstack.secure import MECHANISM, Material
from kafkaguard.testing import stacks


class ChaosStack:
    """Owns the servers of one suite; use as a context manager (everything is removed at exit)."""

    def __init__(self, *, secure: bool = False, min_brokers: int = 1, database: Dialect = "postgresql") -> None:
        if min_brokers not in (1, 3):
            raise ValueError(f"--brokers must be 1 or 3, not {min_brokers}")
        if database not in DIALECTS:
            raise ValueError(f"--database must be one of {', '.join(DIALECTS)}, not {database!r}")
        if secure and database != "postgresql":
            raise ValueError("--secure runs on PostgreSQL only (the secured stack has no MariaDB server)")
        self.secure = secure
        self.database: Dialect = database
        self.min_brokers = min_brokers
        self.material: Material | None = None
        self._exit = ExitStack()
        self._clusters: dict[tuple[int, bool], KafkaCluster] = {}
        self.proxy: TcpProxy | None = None
        self.db_publisher: ChaosDatabase | None = None
        self.db_consumer: ChaosDatabase | None = None

    def __enter__(self) -> ChaosStack:
        if self.secure:
            folder = stacks.scratch_root() / f"chaos-secure-{os.getpid()}"
            self.material = stacks.secure_material(folder)
            self._exit.callback(shutil.rmtree, folder, ignore_errors=True)
            self._exit.enter_context(_environment(self.security_env("operator")))
        self.db_publisher = ChaosDatabase(self._exit.enter_context(self._database_server()))
        self.db_consumer = ChaosDatabase(self._exit.enter_context(self._database_server()))
        return self

    def _database_server(self) -> AbstractContextManager[PostgresServer | MariaDbServer]:
        if self.database == "mariadb":
            return stacks.mariadb_server()
        return stacks.postgres_server(tls=self.material)

    def security_env(self, principal: str) -> dict[str, str]:
        """``KAFKAGUARD_KAFKA_SECURITY__*`` of ``principal`` over SCRAM (empty for a plaintext suite)."""
        if self.material is None:
            return {}
        self.material.password(principal)
        block = "KAFKAGUARD_KAFKA_SECURITY__"
        return {
            f"{block}PROTOCOL": "SASL_SSL",
            f"{block}SASL_MECHANISM": MECHANISM,
            f"{block}USERNAME": principal,
            f"{block}PASSWORD_FILE": str(self.material.password_file(principal)),
            f"{block}CA_LOCATION": str(self.material.ca_file),
        }

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._exit.close()

    def kafka(self, brokers: int, *, proxied: bool = False) -> KafkaCluster:
        """The cluster of ``brokers`` nodes (behind the proxy when ``proxied``: one node), started on
        first use and healed (every node up, the proxy forwarding) on each call."""
        cluster = self._clusters.get((brokers, proxied))
        if cluster is None:
            advertised = None
            if proxied:
                advertised = free_ports(1)
                self.proxy = TcpProxy(advertised[0], 0)
                self._exit.callback(self.proxy.close)
            cluster = self._exit.enter_context(
                stacks.kafka_cluster(brokers, advertised_ports=advertised, secure=self.material)
            )
            if self.proxy is not None and proxied:  # secured: the proxy fronts the SCRAM listener
                self.proxy.target_port = (cluster.sasl_ports or cluster.ports)[0]
            self._clusters[(brokers, proxied)] = cluster
        if proxied and self.proxy is not None:
            self.proxy.heal()
        for node in cluster.nodes:
            node.resume()
        cluster.start()
        return cluster

    def bootstrap(self, cluster: KafkaCluster) -> str:
        """The address clients use: the proxy's for the proxied cluster, else the cluster's own."""
        if self.proxy is not None and cluster is self._clusters.get((1, True)):
            return f"127.0.0.1:{self.proxy.listen_port}"
        return cluster.sasl_bootstrap if self.secure else cluster.bootstrap

    def heal_databases(self) -> None:
        """Start both database servers again if a scenario left one down."""
        for db in (self.db_publisher, self.db_consumer):
            if db is not None:
                db.heal()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the duration (the suite's own clients read them), then as before."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
