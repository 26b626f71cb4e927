"""Start throw-away stacks for tests: free loopback ports, a run folder of their own, wiped after."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from kafkaguard.connect_security import reference
from kafkaguard.db.engine import dialect_name
from kafkaguard.devstack import process
from kafkaguard.devstack.connect import ConnectWorker, ensure_connect, wait_streaming
from kafkaguard.devstack.connect_cluster import ConnectCluster
from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.devstack.secure import Material
from kafkaguard.devstack.stack import DevStack, default_run_dir, secure_run_dir
from kafkaguard.relay.debezium import DebeziumOptions, connector_config
from kafkaguard.transports.kafka_admin import delete_topics

REUSE_ENV = "KAFKAGUARD_TEST_REUSE_STACK"


def scratch_root() -> Path:
    """Folder for test stacks: ``<run dir>/test`` (PostgreSQL's user must be able to enter it)."""
    root = default_run_dir() / "test"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - PostgreSQL's service user must enter it
    return root


def _fresh_dir(prefix: str) -> Path:
    path = scratch_root() / f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


@contextmanager
def kafka_cluster(
    brokers: int = 1, *, advertised_ports: list[int] | None = None, secure: Material | None = None
) -> Iterator[KafkaCluster]:
    """A dedicated Kafka cluster (1 or 3 nodes) on free ports; stopped and deleted afterwards.

    ``advertised_ports``: one per node, the port clients are told to connect to (a proxy's; on a
    secured cluster, in front of the SCRAM listener). ``secure``: the TLS/SCRAM material of a
    secured cluster (:mod:`kafkaguard.devstack.secure`).
    """
    home = _fresh_dir(f"kafka{brokers}")
    ports = process.free_ports(3 * brokers)
    cluster = KafkaCluster(
        home=home, ports=ports[:brokers], controller_ports=ports[brokers : 2 * brokers],
        advertised_ports=advertised_ports, secure=secure, sasl_ports=ports[2 * brokers :] if secure else None,
    )  # fmt: skip
    cluster.build(default_run_dir())
    failed = True
    try:
        cluster.start()
        yield cluster
        failed = False
    finally:
        for node in cluster.nodes:
            node.resume()
            node.kill()  # data is thrown away, so a clean shutdown buys nothing
        if not failed:  # keep the logs of a failed start or test for reading
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def postgres_server(*, tls: Material | None = None) -> Iterator[PostgresServer]:
    """A dedicated PostgreSQL server on a free port (TLS only with ``tls``); stopped and deleted afterwards."""
    home = _fresh_dir("pg")
    server = PostgresServer(home=home, port=process.free_ports(1)[0], tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def mariadb_server() -> Iterator[MariaDbServer]:
    """A dedicated MariaDB server on a free port; killed and deleted afterwards (its files are kept
    for reading when it failed to start)."""
    home = _fresh_dir("mariadb")
    server = MariaDbServer(home=home, port=process.free_ports(1)[0])
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        server.kill()
        if started:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def session_mariadb() -> Iterator[MariaDbServer]:
    """A MariaDB server for a test session: the running ``kafkaguard dev up --database mariadb|both``
    server with ``KAFKAGUARD_TEST_REUSE_STACK=1``, otherwise a dedicated one (:func:`mariadb_server`)."""
    if os.environ.get(REUSE_ENV) == "1":
        stack = DevStack.load(default_run_dir())
        if stack is not None and stack.mariadb is not None and stack.mariadb.is_running():
            yield stack.mariadb
            return
    with mariadb_server() as server:
        yield server


@contextmanager
def ferretdb_server() -> Iterator[FerretDbServer]:
    """A dedicated FerretDB (MongoDB wire, SQLite backend) on free ports, built into the run
    directory once; stopped and deleted afterwards (its files kept when it failed to start)."""
    home = _fresh_dir("ferretdb")
    port, debug_port = process.free_ports(2)
    server = FerretDbServer(run_dir=default_run_dir(), home=home, port=port, debug_port=debug_port)
    started = False
    try:
        server.start()
        started = True
        yield server
    finally:
        server.stop()
        if started:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def debezium_relay(
    bootstrap: str, database_url: str, schema: str, conninfo: str | None = None, *, partitions: int = 3
) -> Iterator[ConnectWorker]:
    """Kafka Connect + Debezium relaying ``schema``'s outbox (PostgreSQL or MariaDB, by the URL);
    afterwards the slot and publication (PostgreSQL, on ``conninfo``) or the schema-history topic
    (MariaDB) are dropped."""
    jars, plugins = ensure_connect(default_run_dir())
    home = _fresh_dir("connect")
    worker = ConnectWorker(home, bootstrap, process.free_ports(1)[0], jars, plugins)
    opts = DebeziumOptions(database_url=database_url, schema=schema, partitions=partitions, bootstrap=bootstrap)
    failed = True
    try:
        worker.start(connector_config(opts))
        if dialect_name(database_url) == "mariadb":
            wait_streaming(bootstrap, opts.heartbeat_topic, log=worker.log_file)
        yield worker
        failed = False
    finally:
        worker.kill()
        _drop_source(bootstrap, opts, conninfo)
        delete_topics(bootstrap, [opts.heartbeat_topic])
        if not failed:
            shutil.rmtree(home, ignore_errors=True)


def _drop_source(bootstrap: str, opts: DebeziumOptions, conninfo: str | None) -> None:
    """Drop what the connector left on the source side: PostgreSQL's slot and publication, or the
    MariaDB connector's schema-history topic (its binlog position lived in Connect's offsets)."""
    if dialect_name(opts.database_url) == "mariadb":
        delete_topics(bootstrap, [opts.history_topic])
    elif conninfo is not None:
        drop_slot(conninfo, opts.slot)


def drop_slot(conninfo: str, slot: str) -> None:
    """Drop Debezium's replication slot ``slot`` (ending the walsender still holding it) and its publication."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        active = conn.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if active and active[0]:
            conn.execute("SELECT pg_terminate_backend(%s)", (active[0],))
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
            (slot,),
        )
        conn.execute(f'DROP PUBLICATION IF EXISTS "{slot}_outbox"')


@contextmanager
def debezium_cluster(
    bootstrap: str,
    database_url: str,
    schema: str,
    conninfo: str | None = None,
    *,
    workers: int = 2,
    partitions: int = 3,
    register: bool = True,
) -> Iterator[ConnectCluster]:
    """Distributed Kafka Connect (``workers`` workers, one group) for ``schema``'s outbox.

    The database password is written to :attr:`ConnectCluster.password_file`, which the workers'
    FileConfigProvider reads. With ``register``, kafkaguard's connector configuration (the password a
    reference to that file) is registered over REST and running when this yields; without, the caller
    registers it (e.g. from ``kafkaguard debezium config --password-file <password_file>``). Afterwards
    the workers are killed, the slot, publication and the cluster's internal topics dropped.
    """
    jars, plugins = ensure_connect(default_run_dir())
    home = _fresh_dir("connect-cluster")
    cluster = ConnectCluster(
        home,
        bootstrap,
        process.free_ports(workers),
        jars,
        plugins,
        group_id=f"kafkaguard-connect-{uuid.uuid4().hex[:8]}",
    )
    opts = DebeziumOptions(database_url=database_url, schema=schema, partitions=partitions, bootstrap=bootstrap)
    cluster.write_password(make_url(database_url).password or "")
    failed = True
    try:
        cluster.start()
        if register:
            cluster.register(connector_config(opts, password_reference=reference(cluster.password_file, "password")))
            if dialect_name(database_url) == "mariadb":
                wait_streaming(bootstrap, opts.heartbeat_topic)
        yield cluster
        failed = False
    finally:
        cluster.kill()
        _drop_source(bootstrap, opts, conninfo)
        delete_topics(bootstrap, [opts.heartbeat_topic])
        delete_topics(bootstrap, cluster.topics)
        if not failed:
            shutil.rmtree(home, ignore_errors=True)


@contextmanager
def session_stack() -> Iterator[tuple[str, PostgresServer]]:
    """Yield (bootstrap servers, PostgreSQL) for a test session.

    With ``KAFKAGUARD_TEST_REUSE_STACK=1`` and a running ``kafkaguard dev up`` stack, that stack is
    used (fast local iterations); otherwise a dedicated single-broker stack is started and removed.
    Tests isolate themselves with their own topics and schema either way.
    """
    if os.environ.get(REUSE_ENV) == "1":
        stack = DevStack.load(default_run_dir())
        if stack is not None and stack.kafka.running() and stack.postgres.is_running():
            yield stack.kafka.bootstrap, stack.postgres
            return
    with postgres_server() as pg, kafka_cluster(1) as kafka:
        yield kafka.bootstrap, pg


@contextmanager
def secure_stack(brokers: int = 1) -> Iterator[DevStack]:
    """A secured stack (:mod:`kafkaguard.devstack.secure`: SCRAM over TLS and mTLS listeners, ACLs,
    PostgreSQL over TLS only) on free ports in a folder of its own; stopped and deleted afterwards.

    With ``KAFKAGUARD_TEST_REUSE_STACK=1`` and a running ``kafkaguard dev up --secure`` stack of
    ``brokers`` nodes, that one is used instead.
    """
    if os.environ.get(REUSE_ENV) == "1":
        running = DevStack.load(secure_run_dir())
        if (
            running is not None
            and running.kafka.size == brokers
            and running.kafka.running()
            and running.postgres.is_running()
        ):
            yield running
            return
    home = _fresh_dir("secure")
    material = secure_material(home)
    ports = process.free_ports(3 * brokers + 1)
    kafka = KafkaCluster(
        home=home / "kafka",
        ports=ports[:brokers],
        controller_ports=ports[brokers : 2 * brokers],
        secure=material,
        sasl_ports=ports[2 * brokers : 3 * brokers],
    )
    kafka.build(default_run_dir())
    stack = DevStack(home, kafka, PostgresServer(home=home / "postgres", port=ports[-1], tls=material))
    failed = True
    try:
        stack.up(timeout=120)
        failed = False
        yield stack
    finally:
        stack.down()
        if not failed:
            shutil.rmtree(home, ignore_errors=True)


def secure_material(folder: Path) -> Material:
    """The CA, certificates and SCRAM passwords of a secured test stack, generated under ``folder``."""
    material = Material(folder / "secrets")
    material.ensure()
    return material
