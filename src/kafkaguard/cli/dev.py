"""``kafkaguard dev``: start, inspect, fault and stop the local Kafka + PostgreSQL (and/or MariaDB) stack,
with FerretDB as its document store when asked."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from kafkaguard.cli.common import out
from kafkaguard.cli.dev_debezium import debezium_app
from kafkaguard.devstack.stack import (
    MARIADB,
    MONGO,
    POSTGRES,
    SECURE_PORTS,
    DevStack,
    StackPorts,
    databases_for,
    default_run_dir,
    secure_run_dir,
)
from kafkaguard.errors import ConfigurationError
from kafkaguard.masking import MASK, mask_text
from kafkaguard.settings import ENV_PREFIX

dev_app = typer.Typer(
    help="Local Kafka (KRaft, from Maven Central) and PostgreSQL 15 and/or MariaDB 10.11 for development."
)
dev_app.add_typer(debezium_app, name="debezium")
_out = out
_err = Console(stderr=True)

RunDir = Annotated[
    Path | None,
    typer.Option("--run-dir", help="Folder for data, logs and state \\[env KAFKAGUARD_RUN_DIR; default ./.run]."),
]


Secure = Annotated[
    bool,
    typer.Option(
        "--secure",
        help="The secured stack (SASL_SSL/SCRAM-SHA-512 and mTLS listeners, ACLs, PostgreSQL over TLS) "
        "in <run dir>/secure.",
    ),
]


class Database(StrEnum):
    postgres = "postgres"
    mariadb = "mariadb"
    both = "both"
    mongo = "mongo"


def _where(run_dir: Path | None, secure: bool) -> Path:
    return secure_run_dir(run_dir) if secure else (run_dir or default_run_dir()).resolve()


def _stack(run_dir: Path | None, secure: bool = False) -> DevStack | None:
    return DevStack.load(_where(run_dir, secure))


def _require_stack(run_dir: Path | None, secure: bool = False) -> DevStack:
    stack = _stack(run_dir, secure)
    if stack is None:
        flag = " --secure" if secure else ""
        raise ConfigurationError(f"no{flag} dev stack has been started here; run `kafkaguard dev up{flag}` first")
    return stack


@dev_app.command("up")
def up(
    brokers: Annotated[int, typer.Option(help="1 broker, or a 3-broker KRaft cluster (RF 3, min ISR 2).")] = 1,
    kafka_port: Annotated[
        int | None,
        typer.Option(
            help="First broker port; broker i uses +2i, its controller +2i+1 (secured: SCRAM on +100+i) "
            "[default: 29092; secured 39092]."
        ),
    ] = None,
    postgres_port: Annotated[int | None, typer.Option(help="PostgreSQL port [default: 25432; secured 35432].")] = None,
    database: Annotated[
        Database | None,
        typer.Option(
            "--database",
            help="Which database servers run: postgres, mariadb or both [default: postgres for a new stack; "
            "a saved stack keeps its own, and naming one it lacks adds it].",
        ),
    ] = None,
    mariadb_port: Annotated[int | None, typer.Option(help="MariaDB port [default: 23306].")] = None,
    mongo: Annotated[
        bool,
        typer.Option(
            "--mongo",
            help="Also run the document store: FerretDB (MongoDB wire protocol), built with `go install` on "
            "first use [a saved stack that has it keeps it].",
        ),
    ] = False,
    mongo_port: Annotated[
        int | None, typer.Option(help="FerretDB port; its debug handler uses +1 [default: 27117].")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each service to answer.")] = 120.0,
    secure: Secure = False,
    run_dir: RunDir = None,
) -> None:
    """Start Kafka and the databases (installing what is missing) and wait until all answer. Idempotent."""
    defaults = SECURE_PORTS if secure else StackPorts()
    ports = StackPorts(
        kafka=kafka_port or defaults.kafka,
        postgres=postgres_port or defaults.postgres,
        mariadb=mariadb_port or defaults.mariadb,
        mongo=mongo_port or defaults.mongo,
    )
    if database is Database.mongo:
        raise ConfigurationError(
            "--database names the SQL servers (postgres, mariadb or both); the document store is `--mongo`"
        )
    databases = databases_for(database.value) if database is not None else None
    with _err.status("fetching Kafka's jars and starting the stack..."):
        stack = DevStack.create(
            _where(run_dir, secure), brokers=brokers, ports=ports, secure=secure, databases=databases, mongo=mongo
        )
        stack.up(timeout=timeout)
    _print_status(stack, as_json=False, show_secrets=False)


@dev_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="Secured stack: show the SCRAM and database passwords.")
    ] = False,
    secure: Secure = False,
    run_dir: RunDir = None,
) -> None:
    """Print the bootstrap servers, the database URL and which processes run."""
    stack = _stack(run_dir, secure)
    if stack is None:
        if as_json:
            _out.print_json(json.dumps({"running": False}))
        else:
            _out.print("no dev stack here; start one with `kafkaguard dev up`")
        raise typer.Exit(1)
    _print_status(stack, as_json=as_json, show_secrets=show_secrets)


def psql_url(database_url: str, schema: str | None = None) -> str:
    """``database_url`` as libpq (``psql URL``) takes it: no SQLAlchemy driver suffix; ``schema`` first
    on the search_path when given."""
    scheme, sep, rest = database_url.partition("://")
    url = f"{scheme.split('+', 1)[0]}{sep}{rest}"
    if schema:
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    return url


def env_lines(info: dict[str, Any], schema: str | None = None, database: str | None = None) -> list[str]:
    """``export`` lines that point kafkaguard at the stack described by ``info`` (:meth:`DevStack.status`);
    ``database`` (``postgres`` | ``mariadb`` | ``mongo``) picks the URL when the stack runs several
    (default: its first SQL one)."""
    if database == MONGO:
        if "mongo_url" not in info:
            raise ConfigurationError("this dev stack has no document store; start it with `kafkaguard dev up --mongo`")
        return [
            f"export {ENV_PREFIX}BOOTSTRAP_SERVERS={shlex.quote(str(info['bootstrap_servers']))}",
            f"export {ENV_PREFIX}DATABASE_URL={shlex.quote(str(info['mongo_url']))}",
            "# FerretDB (MongoDB wire): `kafkaguard consume` and the restore jobs' Python API use the document "
            "store; the relay and the operator commands need a SQL URL",
        ]
    url = str(info["mariadb_url"] if database == MARIADB else info["database_url"])
    if database == POSTGRES and info.get("databases", [POSTGRES])[0] != POSTGRES:
        raise ConfigurationError("this dev stack runs no PostgreSQL; start it with `kafkaguard dev up --database both`")
    values = {"BOOTSTRAP_SERVERS": str(info["bootstrap_servers"]), "DATABASE_URL": url}
    if schema:
        values["DB_SCHEMA"] = schema
    lines = [f"export {ENV_PREFIX}{name}={shlex.quote(value)}" for name, value in values.items()]
    if url.startswith("mysql"):
        address = info["mariadb"]["address"].rsplit(":", 1)
        lines.append(f"# mariadb --host={address[0]} --port={address[1]} --user=kafkaguard -p kafkaguard")
    else:
        lines.append(f"# psql {shlex.quote(psql_url(url, schema))}")
    return lines


class Principal(StrEnum):
    relay = "relay"
    consumer = "consumer"
    operator = "operator"


class Mechanism(StrEnum):
    scram = "scram"
    mtls = "mtls"


@dev_app.command("env")
def env(
    schema: Annotated[str | None, typer.Option("--schema", help="Also export KAFKAGUARD_DB_SCHEMA.")] = None,
    psql: Annotated[bool, typer.Option("--psql", help="Print only the URL for psql.")] = False,
    database: Annotated[
        Database | None,
        typer.Option(
            "--database",
            help="postgres, mariadb or mongo: whose URL, when the stack runs several [default: its first SQL one].",
        ),
    ] = None,
    secure: Secure = False,
    principal: Annotated[
        Principal, typer.Option(help="Secured stack: whose credentials (relay, consumer, operator).")
    ] = Principal.operator,
    mechanism: Annotated[
        Mechanism, typer.Option(help="Secured stack: scram (SASL_SSL, SCRAM-SHA-512) or mtls (SSL, client cert).")
    ] = Mechanism.scram,
    run_dir: RunDir = None,
) -> None:
    """Print shell `export` lines for this stack: eval "$(kafkaguard dev env)"; psql "$(kafkaguard dev env --psql)".

    With --secure, the kafka_security settings of one principal too (its password as a file path).
    """
    stack = _require_stack(run_dir, secure)
    info = stack.status()
    if database is Database.both:
        raise ConfigurationError("dev env --database takes postgres, mariadb or mongo (one URL)")
    chosen = database.value if database is not None else None
    if chosen == MARIADB and stack.mariadb is None:
        raise ConfigurationError("this dev stack has no MariaDB; start it with `kafkaguard dev up --database mariadb`")
    if psql:
        if chosen == MONGO:
            raise ConfigurationError("--psql is for PostgreSQL; the document store's URL is `dev env --database mongo`")
        if chosen == MARIADB or (chosen is None and stack.databases[:1] == (MARIADB,)):
            raise ConfigurationError(
                "--psql is for PostgreSQL; MariaDB's URL is in `kafkaguard dev env --database mariadb`"
            )
        lines = [psql_url(str(info["database_url"]), schema)]
    else:
        lines = env_lines(info, schema, chosen)
        if secure:
            secured = secure_env_lines(info, principal.value, mechanism.value)
            lines = [secured[0], *lines[1:-1], *secured[1:], lines[-1]]  # its listeners replace the mTLS ones
    sys.stdout.write("\n".join(lines) + "\n")


def secure_env_lines(info: dict[str, Any], principal: str, mechanism: str) -> list[str]:
    """``export`` lines of the ``kafka_security`` block for ``principal`` on the secured stack ``info``;
    the bootstrap servers become that mechanism's listeners. No password: its file."""
    who = info["principals"][principal]
    block = "KAFKA_SECURITY__"
    if mechanism == "scram":
        values = {
            "BOOTSTRAP_SERVERS": info["sasl_ssl_bootstrap_servers"],
            f"{block}PROTOCOL": "SASL_SSL",
            f"{block}SASL_MECHANISM": info["sasl_mechanism"],
            f"{block}USERNAME": who["username"],
            f"{block}PASSWORD_FILE": who["password_file"],
            f"{block}CA_LOCATION": info["ca_file"],
        }
    else:
        values = {
            "BOOTSTRAP_SERVERS": info["ssl_bootstrap_servers"],
            f"{block}PROTOCOL": "SSL",
            f"{block}CA_LOCATION": info["ca_file"],
            f"{block}CERTIFICATE_LOCATION": who["certificate_file"],
            f"{block}KEY_LOCATION": who["key_file"],
        }
    return [f"export {ENV_PREFIX}{name}={shlex.quote(str(value))}" for name, value in values.items()]


@dev_app.command("down")
def down(
    wipe: Annotated[bool, typer.Option(help="Also delete the data and the saved state.")] = False,
    secure: Secure = False,
    run_dir: RunDir = None,
) -> None:
    """Stop Kafka and the databases. Succeeds when nothing runs."""
    stack = _stack(run_dir, secure)
    if stack is None:
        _out.print("nothing to stop")
        return
    stack.down(wipe=wipe)
    _out.print("stopped" + (" and wiped" if wipe else ""))


class Fault(StrEnum):
    stop = "stop"
    kill = "kill"
    pause = "pause"
    resume = "resume"
    restart = "restart"


@dev_app.command("kafka")
def kafka_fault(
    action: Annotated[Fault, typer.Argument(help="stop | kill (-9) | pause (SIGSTOP) | resume | restart")],
    node: Annotated[int, typer.Option(help="Node id (1-based).")] = 1,
    secure: Secure = False,
    run_dir: RunDir = None,
) -> None:
    """Inject a fault into one broker; its data is kept."""
    stack = _require_stack(run_dir, secure)
    broker = stack.kafka.node(node)
    if action is Fault.restart:
        stack.kafka.restart(node)
    else:
        actions: dict[Fault, Callable[[], None]] = {
            Fault.stop: broker.stop,
            Fault.kill: broker.kill,
            Fault.pause: broker.pause,
            Fault.resume: broker.resume,
        }
        actions[action]()
    stack.save()
    _out.print(f"kafka node {node}: {action.value}")


@dev_app.command("postgres")
def postgres_fault(
    action: Annotated[Fault, typer.Argument(help="stop | kill (-9) | restart")],
    secure: Secure = False,
    run_dir: RunDir = None,
) -> None:
    """Inject a fault into PostgreSQL; its data is kept."""
    stack = _require_stack(run_dir, secure)
    pg = stack.postgres
    actions: dict[Fault, Callable[[], None]] = {Fault.stop: pg.stop, Fault.kill: pg.kill, Fault.restart: pg.restart}
    if action not in actions:
        raise ConfigurationError("PostgreSQL supports stop, kill and restart")
    actions[action]()
    stack.save()
    _out.print(f"postgres: {action.value}")


class _Restartable(Protocol):
    def stop(self) -> None: ...
    def kill(self) -> None: ...
    def restart(self, *, timeout: float = 60.0) -> None: ...


def _server_fault(
    stack: DevStack, server: _Restartable | None, action: Fault, *, name: str, label: str, add: str
) -> None:
    """Stop, kill -9 or restart one of the stack's servers (``add``: the flag that starts a missing one)."""
    if server is None:
        raise ConfigurationError(f"this dev stack has no {label}; start it with `kafkaguard dev up {add}`")
    actions: dict[Fault, Callable[[], None]] = {
        Fault.stop: server.stop,
        Fault.kill: server.kill,
        Fault.restart: server.restart,
    }
    if action not in actions:
        raise ConfigurationError(f"{label} supports stop, kill and restart")
    actions[action]()
    stack.save()
    _out.print(f"{name}: {action.value}")


@dev_app.command("mongo")
def mongo_fault(
    action: Annotated[Fault, typer.Argument(help="stop | kill (-9) | restart")],
    run_dir: RunDir = None,
) -> None:
    """Inject a fault into the document store (FerretDB); its data is kept."""
    stack = _require_stack(run_dir)
    _server_fault(stack, stack.mongo, action, name="mongo", label="document store", add="--mongo")


@dev_app.command("mariadb")
def mariadb_fault(
    action: Annotated[Fault, typer.Argument(help="stop | kill (-9) | restart")],
    run_dir: RunDir = None,
) -> None:
    """Inject a fault into MariaDB; its data is kept."""
    stack = _require_stack(run_dir)
    _server_fault(stack, stack.mariadb, action, name="mariadb", label="MariaDB", add="--database mariadb")


def _print_status(stack: DevStack, *, as_json: bool, show_secrets: bool) -> None:
    info = stack.status()
    if stack.secure and not show_secrets:
        info = _masked(info)
    if as_json:
        _out.print_json(json.dumps(info))
        return
    _out.print(f"bootstrap servers: [bold]{info['bootstrap_servers']}[/]")
    _out.print(f"database URL:      [bold]{info['database_url']}[/]", highlight=False)
    table = Table("service", "address", "pid", "state", "log")
    for b in info["brokers"]:
        state = "paused" if b["paused"] else ("running" if b["running"] else "down")
        table.add_row(f"kafka node {b['node_id']}", b["address"], str(b["pid"]), state, b["log"])
    pg = info["postgres"]
    if POSTGRES in info["databases"]:
        table.add_row("postgres", pg["address"], str(pg["pid"]), "running" if pg["running"] else "down", pg["log"])
    if "mariadb" in info:
        my = info["mariadb"]
        table.add_row("mariadb", my["address"], str(my["pid"]), "running" if my["running"] else "down", my["log"])
        if info["databases"][0] != MARIADB:
            _out.print(f"MariaDB URL:       [bold]{info['mariadb_url']}[/]", highlight=False)
    if "mongo" in info:
        mg = info["mongo"]
        table.add_row("ferretdb", mg["address"], str(mg["pid"]), "running" if mg["running"] else "down", mg["log"])
        _out.print(f"document store:    [bold]{info['mongo_url']}[/] (FerretDB)", highlight=False)
    _out.print(table)
    if stack.secure:
        _out.print(f"SASL_SSL (SCRAM-SHA-512): [bold]{info['sasl_ssl_bootstrap_servers']}[/]   "
                   f"SSL (mTLS): [bold]{info['ssl_bootstrap_servers']}[/]   CA: {info['ca_file']}")  # fmt: skip
        _out.print("principals: " + ", ".join(info["principals"]) + " — `kafkaguard dev env --secure --principal NAME`")


def _masked(info: dict[str, Any]) -> dict[str, Any]:
    """A secured stack's status without its passwords (``--show-secrets`` shows them)."""
    principals = {name: {**who, "password": MASK} for name, who in info["principals"].items()}
    url = info["database_url"]
    return {**info, "principals": principals, "database_url": mask_text(url) if url else url}
