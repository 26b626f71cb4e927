"""Local Apache Kafka (KRaft, jars from Maven Central) and PostgreSQL 15 for development and tests.

Nothing here is needed in production; it exists so that every test of kafkaguard runs against a
real broker and a real database on a machine without Docker.
"""

from kafkaguard.devstack.kafka import KafkaBroker, KafkaCluster
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.devstack.stack import DevStack, StackPorts

__all__ = ["DevStack", "KafkaBroker", "KafkaCluster", "PostgresServer", "StackPorts"]
