"""``kafkaguard dev debezium``: run Debezium (Kafka Connect standalone, or distributed with ``--distributed``)
as the outbox relay of one schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from sqlalchemy.engine import make_url

from kafkaguard.cli.common import out, say
from kafkaguard.cli.startup import database_target
from kafkaguard.connect_security import reference
from kafkaguard.devstack.connect import ConnectWorker, ensure_connect, wait_streaming
from kafkaguard.devstack.connect_cluster import ConnectCluster
from kafkaguard.devstack.stack import MARIADB, POSTGRES, DevStack, default_run_dir
from kafkaguard.errors import ConfigurationError
from kafkaguard.kafka_security import from_environ
from kafkaguard.relay.debezium import SLOT_LAG_SQL, DebeziumOptions, SlotStatus, connector_config

debezium_app = typer.Typer(
    help="Debezium's PostgreSQL or MariaDB connector with the Outbox Event Router, as the relay."
)

SchemaOpt = Annotated[str, typer.Option("--schema", help="Schema whose outbox Debezium relays.")]
RunDirOpt = Annotated[Path | None, typer.Option("--run-dir", help="Run folder \\[env KAFKAGUARD_RUN_DIR].")]


def _stack(run_dir: Path | None) -> DevStack:
    stack = DevStack.load((run_dir or default_run_dir()).resolve())
    if stack is None:
        raise ConfigurationError("no dev stack here; run `kafkaguard dev up` first")
    return stack


def _worker(stack: DevStack, rest_port: int) -> ConnectWorker:
    jars, plugins = ensure_connect(stack.run_dir)
    home = stack.run_dir / "connect"
    pid_file = home / "pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    # The worker's clients connect like kafkaguard's (KAFKAGUARD_KAFKA_SECURITY__*; plaintext when unset).
    security = from_environ(os.environ)
    return ConnectWorker(home, stack.kafka.bootstrap, rest_port, jars, plugins, pid=pid, security=security)


def slot_status(conninfo: str, slot: str) -> SlotStatus:
    """Read the replication slot's state and retained WAL."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(SLOT_LAG_SQL, {"slot": slot}).fetchone()
    if row is None:
        return SlotStatus(slot, False, False, 0)
    return SlotStatus(slot, True, bool(row[1]), int(row[2] or 0))


def _cluster(stack: DevStack, rest_port: int, workers: int) -> ConnectCluster:
    """The dev stack's distributed Connect cluster: ``workers`` workers on REST ports ``rest_port``, +1, ..."""
    jars, plugins = ensure_connect(stack.run_dir)
    home = stack.run_dir / "connect-cluster"
    pids_file = home / "pids.json"
    saved: dict[str, int] = json.loads(pids_file.read_text()) if pids_file.exists() else {}
    ports = [int(p) for p in saved] or [rest_port + i for i in range(workers)]
    cluster = ConnectCluster(home, stack.kafka.bootstrap, ports, jars, plugins, security=from_environ(os.environ))
    for worker in cluster.workers:
        worker.pid = saved.get(str(worker.rest_port))
    return cluster


DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database", help="postgres or mariadb: whose outbox [default: the stack's first database]."),
]


def _source(stack: DevStack, schema: str, database: str | None) -> tuple[DebeziumOptions, str]:
    """The connector's options for the dev stack's ``database`` (its first by default), and its label."""
    chosen = database or stack.databases[0]
    if chosen not in (POSTGRES, MARIADB):
        raise ConfigurationError(f"--database is postgres or mariadb, not {chosen!r}")
    if chosen not in stack.databases:
        raise ConfigurationError(f"this dev stack runs no {chosen}; start it with `kafkaguard dev up --database both`")
    if chosen == MARIADB:
        assert stack.mariadb is not None  # databases names it, so the stack holds it
        url, label = stack.mariadb.url(), "MariaDB"
    else:
        url, label = stack.postgres.url(), "PostgreSQL"
    return DebeziumOptions(database_url=url, schema=schema, bootstrap=stack.kafka.bootstrap), label


@debezium_app.command("start")
def start(
    schema: SchemaOpt = "public",
    database: DatabaseOpt = None,
    rest_port: int = 28083,
    distributed: Annotated[
        bool, typer.Option(help="Distributed Connect (topics for configs, offsets, status; REST registration).")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Workers of the distributed cluster.")] = 2,
    run_dir: RunDirOpt = None,
) -> None:
    """Start Connect with the outbox connector for SCHEMA and wait until its task runs."""
    stack = _stack(run_dir)
    opts, label = _source(stack, schema, database)
    where = f"{label} {database_target(opts.database_url, schema)}"
    source = f"slot {opts.slot}" if label == "PostgreSQL" else f"binlog, schema history {opts.history_topic}"
    if distributed:
        cluster = _cluster(stack, rest_port, workers)
        cluster.write_password(make_url(opts.database_url).password or "")
        try:
            cluster.start()
        finally:  # `dev debezium stop` finds the workers, even those of a failed start
            (cluster.home / "pids.json").write_text(json.dumps({str(w.rest_port): w.pid for w in cluster.workers}))
        cluster.register(connector_config(opts, password_reference=reference(cluster.password_file, "password")))
        if label == "MariaDB":  # durable only once it streams (see wait_streaming)
            wait_streaming(stack.kafka.bootstrap, opts.heartbeat_topic)
        rest = ", ".join(w.rest for w in cluster.workers)
        say(f"Debezium relays the outbox of {where} to Kafka {stack.kafka.bootstrap} on a "
            f"distributed Connect cluster of {len(cluster.workers)} workers (REST {rest}, group {cluster.group_id}, "
            f"{source}); logs: {cluster.home}/worker*/connect.log")  # fmt: skip
        return
    worker = _worker(stack, rest_port)
    worker.start(connector_config(opts))
    (worker.home / "pid").write_text(str(worker.pid))
    if label == "MariaDB":  # durable only once it streams (see wait_streaming)
        wait_streaming(stack.kafka.bootstrap, opts.heartbeat_topic, log=worker.log_file)
    say(f"Debezium relays the outbox of {where} to Kafka {stack.kafka.bootstrap} "
        f"(REST {worker.rest}, {source}); log: {worker.log_file}")  # fmt: skip


@debezium_app.command("stop")
def stop(kill: bool = False, run_dir: RunDirOpt = None) -> None:
    """Stop Connect's standalone and distributed workers (``--kill``: SIGKILL); the slot keeps what is unconfirmed."""
    stack = _stack(run_dir)
    worker = _worker(stack, 28083)
    worker.kill() if kill else worker.stop()
    if (stack.run_dir / "connect-cluster" / "pids.json").exists():
        cluster = _cluster(stack, 28083, 0)
        cluster.kill() if kill else cluster.stop()
        (cluster.home / "pids.json").unlink()
    out.print("connect stopped" + (" (killed)" if kill else ""))


@debezium_app.command("check")
def check(
    schema: SchemaOpt = "public",
    limit_mb: Annotated[float, typer.Option(help="Warn above this much retained WAL.")] = 256.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    run_dir: RunDirOpt = None,
) -> None:
    """Report the replication slot's retained WAL; exit 1 with a warning when it exceeds the limit.

    PostgreSQL only: on MariaDB the connector holds no slot (the binlog is kept for
    ``binlog_expire_logs_seconds`` whether or not Debezium reads it)."""
    stack = _stack(run_dir)
    if POSTGRES not in stack.databases:
        raise ConfigurationError(
            "debezium check reads PostgreSQL's replication slot; this dev stack runs no PostgreSQL"
        )
    status = slot_status(stack.postgres.conninfo(), DebeziumOptions(database_url="postgresql://x", schema=schema).slot)
    warning = status.warning(int(limit_mb * 1e6))
    if as_json:
        out.print_json(json.dumps({**status.__dict__, "warning": warning}))
    else:
        out.print(warning or f"slot {status.slot}: exists={status.exists} active={status.active} "
                  f"retained={status.retained_bytes / 1e6:.1f} MB")  # fmt: skip
    if warning:
        raise typer.Exit(1)
