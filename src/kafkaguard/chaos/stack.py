"""The servers a chaos suite runs on: two PostgreSQL servers and Kafka clusters on free ports.

The writing service and the consuming service each get a PostgreSQL server of their own, so
"PostgreSQL down for the publisher" and "for the consumer" are separate faults. Kafka clusters
(1 broker, or 3 with RF 3 and ``min.insync.replicas=2``) are started on first use and shared by
the runs that need that size; every run uses its own topic, schemas and consumer group.
"""

from __future__ import annotations

from contextlib import ExitStack
from types import TracebackType

from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.testing import stacks


class ChaosStack:
    """Owns the servers of one suite; use as a context manager (everything is removed at exit)."""

    def __init__(self) -> None:
        self._exit = ExitStack()
        self._clusters: dict[int, KafkaCluster] = {}
        self.pg_publisher: PostgresServer | None = None
        self.pg_consumer: PostgresServer | None = None

    def __enter__(self) -> ChaosStack:
        self.pg_publisher = self._exit.enter_context(stacks.postgres_server())
        self.pg_consumer = self._exit.enter_context(stacks.postgres_server())
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self._exit.close()

    def kafka(self, brokers: int) -> KafkaCluster:
        """The cluster of ``brokers`` nodes, started on first use and healed (every node up) on each call."""
        cluster = self._clusters.get(brokers)
        if cluster is None:
            cluster = self._exit.enter_context(stacks.kafka_cluster(brokers))
            self._clusters[brokers] = cluster
        for node in cluster.nodes:
            node.resume()
        cluster.start()
        return cluster

    def heal_postgres(self) -> None:
        """Start both PostgreSQL servers again if a scenario left one down."""
        for server in (self.pg_publisher, self.pg_consumer):
            if server is not None and not server.is_running():
                server.start()
