"""``make demo``: the dailyfeed services on the local stack, through a Kafka outage and a consumer crash.

1. Starts Kafka and PostgreSQL (installing and fetching what is missing), resets the demo's
   schemas and topics, and starts four processes: the content API, the outbox relay, the activity
   consumer and the activity API. Posts publish through the outbox; comments publish ``direct``
   (inside the request, dead-lettered when Kafka is down) — both modes side by side.
2. Drives ~2,000 writes from concurrent clients. Mid-run it stops the broker for a while, and later
   kills the activity consumer with SIGKILL and starts it again. One member's activities are put
   on hold during the run, so their events fail in the handler, are dead-lettered and park their
   keys.
3. Releases the hold, runs the batch (both restore jobs) and waits for the system to settle.
4. Prints the reconciliation read from the databases and the topics, and exits non-zero unless
   lost = 0, duplicates = 0 and phantom = 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import make_url

from examples.dailyfeed.activity.models import Base as ActivityBase
from examples.dailyfeed.batch import Batch
from examples.dailyfeed.config import DailyfeedSettings
from examples.dailyfeed.content.models import Base as ContentBase
from examples.dailyfeed.demo.reconcile import Reconciliation, reconcile
from examples.dailyfeed.demo.services import Service, python_module, wait_for
from examples.dailyfeed.demo.workload import run_workload
from kafkaguard import create_engine
from kafkaguard.testing import DevStack, default_run_dir, delete_topics, ensure_topics, free_ports, upgrade_database

console = Console()
TOPICS = ["outbox.event.post", "outbox.event.comment"]
HELD_MEMBER = 1003


def reset(stack: DevStack, settings: DailyfeedSettings) -> None:
    """Fresh schemas (kafkaguard's tables + each service's own) and fresh topics for this run."""
    with psycopg.connect(stack.postgres.conninfo(), autocommit=True) as conn:
        for schema in (settings.content_schema, settings.activity_schema):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    for schema, base in ((settings.content_schema, ContentBase), (settings.activity_schema, ActivityBase)):
        upgrade_database(settings.database_url, schema=schema)
        engine = create_engine(url=settings.database_url, schema=schema)
        base.metadata.create_all(engine)
        engine.dispose()
    delete_topics(stack.kafka.bootstrap, TOPICS + [t + ".dlq" for t in TOPICS])
    deadline = time.monotonic() + 30
    while True:  # topic deletion is asynchronous in Kafka; creation fails until it completes
        try:
            ensure_topics(stack.kafka.bootstrap, TOPICS, partitions=settings.topic_partitions)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def services(stack: DevStack, settings: DailyfeedSettings, logs: Path, ports: list[int]) -> dict[str, Service]:
    base_env = {
        "DAILYFEED_DATABASE_URL": settings.database_url,
        "DAILYFEED_BOOTSTRAP_SERVERS": stack.kafka.bootstrap,
        "DAILYFEED_ACTIVITY_GROUP": settings.activity_group,
        "DAILYFEED_POST_PUBLISH_MODE": settings.post_publish_mode,
        "DAILYFEED_COMMENT_PUBLISH_MODE": settings.comment_publish_mode,
        "DAILYFEED_ACTIVITY_URL": f"http://127.0.0.1:{ports[1]}",
        "DAILYFEED_HTTP_SECRET": secrets.token_hex(32),  # the content service signs, the activity service checks
        "KAFKAGUARD_DATABASE_URL": settings.database_url,
        "KAFKAGUARD_BOOTSTRAP_SERVERS": stack.kafka.bootstrap,
        "KAFKAGUARD_PUBLISH__DIRECT_TIMEOUT": "2",
        "PYTHONPATH": str(Path.cwd()),
    }
    uvicorn = ["uvicorn", "--host", "127.0.0.1", "--log-level", "warning", "--port"]
    return {
        "content": Service(
            "content", python_module(*uvicorn, str(ports[0]), "examples.dailyfeed.content.main:app"),
            base_env, logs / "content.log", f"http://127.0.0.1:{ports[0]}/health",
        ),
        "activity-api": Service(
            "activity-api", python_module(*uvicorn, str(ports[1]), "examples.dailyfeed.activity.main:app"),
            base_env, logs / "activity-api.log", f"http://127.0.0.1:{ports[1]}/health",
        ),
        "relay": Service(
            "relay", python_module("kafkaguard", "relay", "--schema", settings.content_schema),
            base_env, logs / "relay.log",
        ),
        "consumer": Service(
            "consumer",
            python_module(
                "kafkaguard", "consume", "examples.dailyfeed.activity.handlers:registry",
                "--group", settings.activity_group, "--schema", settings.activity_schema,
                *[a for t in TOPICS for a in ("--topic", t)],
            ),
            {**base_env, "KAFKAGUARD_DB_SCHEMA": settings.activity_schema}, logs / "consumer.log",
        ),
    }  # fmt: skip


def execute(settings: DailyfeedSettings, query: str, params: tuple[object, ...] = ()) -> int:
    """Run ``query`` with ``{c}``/``{a}`` standing for the content/activity schemas (quoted identifiers);
    return the first column of the first row (0 when none)."""
    names = {"c": sql.Identifier(settings.content_schema), "a": sql.Identifier(settings.activity_schema)}
    with psycopg.connect(_conninfo(settings), autocommit=True) as conn:
        cur = conn.execute(sql.SQL(query).format(**names), params)  # type: ignore[arg-type]
        row = cur.fetchone() if cur.description else None
    return int(row[0]) if row else 0


def _conninfo(settings: DailyfeedSettings) -> str:
    # A libpq URL (psycopg's own) from the SQLAlchemy one: the driver name goes, the rest stays.
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def print_reconciliation(rec: Reconciliation, seconds: float) -> None:
    table = Table(title=f"dailyfeed reconciliation (from the databases and topics, {seconds:.0f} s)")
    table.add_column("measure")
    table.add_column("count", justify="right")
    labels = {
        "committed": "writes committed (content.content_writes)",
        "on_kafka": "events on Kafka (distinct event ids)",
        "kafka_copies": "messages on Kafka (copies incl. redeliveries)",
        "applied": "activities applied (activity.member_activities)",
        "publisher_dead_letters": "publisher dead letters (direct mode, broker down)",
        "publisher_restored": "  restored by publishDeadletterRestoreJob",
        "listener_dead_letters": "listener dead letters (incl. parked)",
        "listener_restored": "  restored by listenerDeadletterRestoreJob",
        "open_dead_letters": "dead letters still open",
        "lost": "LOST (committed, never applied)",
        "duplicates": "DUPLICATES (applied more than once)",
        "phantom": "PHANTOM (applied, never committed)",
    }
    for key, value in rec.as_dict().items():
        style = "bold green" if key in ("lost", "duplicates", "phantom") and value == 0 else ""
        if key in ("lost", "duplicates", "phantom") and value:
            style = "bold red"
        table.add_row(labels[key], f"[{style}]{value}[/]" if style else str(value))
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description="dailyfeed demo")
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the broker stays down")
    args = parser.parse_args()
    started = time.monotonic()

    console.rule("[bold]kafkaguard demo: dailyfeed")
    with console.status("starting Kafka and PostgreSQL (the first run fetches Kafka's jars)..."):
        stack = DevStack.create(default_run_dir())
        stack.up()
    run_id = uuid.uuid4().hex[:6]
    settings = DailyfeedSettings(
        database_url=stack.postgres.url(),
        bootstrap_servers=stack.kafka.bootstrap,
        activity_group=f"activity-{run_id}",
        post_publish_mode=os.environ.get("DAILYFEED_POST_PUBLISH_MODE", "outbox"),
        comment_publish_mode=os.environ.get("DAILYFEED_COMMENT_PUBLISH_MODE", "direct"),
    )
    console.print(f"stack: Kafka {stack.kafka.bootstrap}, PostgreSQL 127.0.0.1:{stack.postgres.port}")
    console.print(f"modes: posts → {settings.post_publish_mode}, comments → {settings.comment_publish_mode}")
    with console.status("resetting the demo's schemas and topics..."):
        reset(stack, settings)
    execute(settings, "INSERT INTO {a}.members_on_hold VALUES (%s)", (HELD_MEMBER,))

    logs = default_run_dir() / "demo" / run_id
    ports = free_ports(2)
    procs = services(stack, settings, logs, ports)
    with console.status("starting content API, relay, activity consumer and activity API..."):
        for svc in procs.values():
            svc.start()
    console.print(f"services up (logs in {logs}); member {HELD_MEMBER}'s activities are on hold")

    events_log: list[str] = []
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"), console=console,
    )  # fmt: skip
    task = progress.add_task("writes", total=args.writes, note="")
    done = [0]

    def tick() -> None:
        done[0] += 1
        progress.advance(task)

    def faults() -> None:
        wait_for(lambda: done[0] >= args.writes * 0.25, 600, "25% of writes")
        progress.update(task, note="[yellow]Kafka broker stopped")
        events_log.append(f"+{time.monotonic() - started:.0f}s broker stopped")
        stack.kafka.node(1).stop()
        time.sleep(args.outage)  # the outage itself, not synchronisation
        stack.kafka.restart(1)
        events_log.append(f"+{time.monotonic() - started:.0f}s broker back")
        progress.update(task, note="")
        wait_for(lambda: done[0] >= args.writes * 0.6, 600, "60% of writes")
        progress.update(task, note="[yellow]activity consumer killed -9")
        procs["consumer"].kill()
        events_log.append(f"+{time.monotonic() - started:.0f}s consumer killed -9")
        procs["consumer"].start()
        events_log.append(f"+{time.monotonic() - started:.0f}s consumer restarted")
        progress.update(task, note="")

    fault_thread = threading.Thread(target=faults, daemon=True)
    with progress:
        fault_thread.start()
        report = asyncio.run(
            run_workload(
                f"http://127.0.0.1:{ports[0]}", clients=args.clients, writes=args.writes, seed=args.seed, progress=tick
            )
        )
        fault_thread.join(timeout=120)
    for line in events_log:
        console.print(f"  {line}")
    console.print(f"writes accepted: {report.total_ok}, refused or failed: {sum(report.failed.values())}")

    with console.status("waiting for the relay to drain the outbox..."):
        wait_for(lambda: execute(settings, "SELECT count(*) FROM {c}.outbox") == 0, 180, "empty outbox")
    execute(settings, "DELETE FROM {a}.members_on_hold")
    console.print(f"member {HELD_MEMBER}'s hold released; running the batch (both restore jobs) until settled")
    batch = Batch(settings, handoff=False)

    def settled() -> bool:
        batch.run()
        applied = execute(settings, "SELECT count(*) FROM {a}.member_activities")
        committed = execute(settings, "SELECT count(*) FROM {c}.content_writes")
        return applied >= committed

    with console.status("restore jobs running..."):
        wait_for(settled, 240, "every committed write applied")
    c, a = settings.content_schema, settings.activity_schema
    rec = reconcile(_conninfo(settings), stack.kafka.bootstrap, TOPICS, content=c, activity=a)
    for svc in procs.values():
        svc.stop()
    print_reconciliation(rec, time.monotonic() - started)
    console.print(
        "\nwhere to look next:\n"
        f"  logs:            {logs}\n"
        "  dead letters:    .venv/bin/kafkaguard dead-letters stats --store publisher "
        f"--schema {c} --url '<database URL from `kafkaguard dev status`>'\n"
        f"                  .venv/bin/kafkaguard dead-letters list --store listener --schema {a} --url ...\n"
        "  run by hand:     see README, 'Reference services'\n"
        "  stop the stack:  .venv/bin/kafkaguard dev down"
    )
    if report.total_ok == 0 or rec.committed != report.total_ok:
        console.print(f"[bold red]the workload's accepted writes ({report.total_ok}) do not match the committed "
                      f"writes ({rec.committed})[/]")  # fmt: skip
        return 1
    if not rec.ok:
        console.print("[bold red]reconciliation FAILED[/]")
        return 1
    console.print("[bold green]reconciliation passed: lost = 0, duplicates = 0, phantom = 0[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
