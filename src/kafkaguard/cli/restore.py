"""``kafkaguard restore publisher|listener``: process due dead letters once or on a schedule."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

import typer
from sqlalchemy.exc import InterfaceError, OperationalError

from kafkaguard.cli.common import (
    LogFormatOpt,
    MetricsAddrOpt,
    MetricsPortOpt,
    engine_for,
    load_settings,
    once_or_every,
    say,
    start_metrics,
)
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.cli.listener_restore import listener_run_once, resolve_group
from kafkaguard.cli.replay_plan import listing
from kafkaguard.cli.restore_runners import publisher_job
from kafkaguard.cli.startup import configure_logging
from kafkaguard.consumer.restore_loop import async_engine_for
from kafkaguard.db.readiness import RESTORE_TABLES
from kafkaguard.errors import StoreUnavailableError
from kafkaguard.logtext import short
from kafkaguard.metrics import Metrics
from kafkaguard.restore.report import RunReport
from kafkaguard.restore.schedule import run_every
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.tracing.setup import start_tracing

restore_app = typer.Typer(help="Restore jobs: due dead letters back to Kafka or through the handlers.")

UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL \\[env KAFKAGUARD_DATABASE_URL].")]
SchemaOpt = Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")]
OnceOpt = Annotated[bool, typer.Option("--once", help="One run, then exit (a Kubernetes CronJob).")]
EveryOpt = Annotated[str | None, typer.Option("--every", help="Run on a schedule, e.g. 60s (until SIGTERM).")]


OUTAGES = (StoreUnavailableError, OperationalError, InterfaceError)
"""What a restore run raises when PostgreSQL is unreachable (counted as a store outage)."""


def _measured(store: str, metrics: Metrics | None, run: Callable[[], RunReport]) -> RunReport:
    """``run()``, its duration, outcomes or outage counted into ``metrics`` (None: not counted)."""
    if metrics is None:
        return run()
    started = time.monotonic()
    try:
        report = run()
    except OUTAGES:
        metrics.restore_run(store, time.monotonic() - started, None)
        raise
    metrics.restore_run(store, time.monotonic() - started, report)
    return report


def _report(store: str, report: RunReport, *, group: str | None = None) -> bool:
    """Print the run's one line; return whether every due record it took was restored."""
    line = (
        f"restore {store}{f' (group {short(group, 60)})' if group else ''}: restored={report.restored} "
        f"retried={report.retried} failed={report.failed} skipped_keys={report.skipped_keys}"
    )
    if store == "listener":  # only the listener job can leave keys unhandled
        line += f" unhandled_keys={report.unhandled_keys}"
        if report.unhandled_types:
            line += " (cannot apply " + listing(f"{t} ({why})" for t, why in report.unhandled_types.items()) + ")"
    say(line)
    return report.retried == 0 and report.failed == 0 and report.unhandled_keys == 0


def _schedule(once: bool, interval: float | None, job: Callable[[], bool]) -> None:
    """Run ``job`` once (exit 1 unless it restored everything it took) or every ``interval`` seconds."""
    if once:
        if not job():
            raise typer.Exit(1)
    else:
        assert interval is not None
        run_every(interval, job)


@restore_app.command("publisher")
def publisher(
    once: OnceOpt = False, every: EveryOpt = None,
    strategy: Annotated[PublisherStrategy | None, typer.Option(help="republish | handoff.")] = None,
    handoff_group: Annotated[str | None, typer.Option(help="Consumer group receiving handed-off events.")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
    metrics_port: MetricsPortOpt = None, metrics_addr: MetricsAddrOpt = "127.0.0.1",
    log_format: LogFormatOpt = None,
) -> None:  # fmt: skip
    """Republish due publisher dead letters to Kafka (or hand them to the listener store), per-key order.

    With --once, exits 1 when a record it took was not restored (retried later, or failed)."""
    interval = once_or_every(once, every)
    configure_logging("INFO", log_format)
    settings = load_settings(url, schema)
    start_tracing(settings.tracing, "restore")
    if strategy is not None or handoff_group is not None:
        restore = settings.restore.model_copy(
            update={k: v for k, v in {"publisher_strategy": strategy, "handoff_group": handoff_group}.items() if v}
        )
        settings = settings.model_copy(update={"restore": restore})
    engine = engine_for(settings, tables=RESTORE_TABLES)
    job = publisher_job(settings, engine)
    metrics = start_metrics(metrics_port, metrics_addr, settings.database_url, settings.db_schema, parts=("restore",))
    if metrics is not None:
        metrics.restore_store("publisher")

    def run() -> bool:
        return _report("publisher", _measured("publisher", metrics, job.run_once))

    _schedule(once, interval, run)


@restore_app.command("listener")
def listener(
    app: Annotated[str, typer.Option(help="module:registry of the consumer's handlers.")],
    once: OnceOpt = False, every: EveryOpt = None,
    group: Annotated[str | None, typer.Option(help="Consumer group \\[env KAFKAGUARD_CONSUMER__GROUP_ID].")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
    metrics_port: MetricsPortOpt = None, metrics_addr: MetricsAddrOpt = "127.0.0.1",
    log_format: LogFormatOpt = None,
) -> None:  # fmt: skip
    """Re-run the handlers for due listener dead letters through the inbox path, per-key order.

    Runs under --group, else the configured consumer group, else the one group that has open
    listener dead letters (several: refused). A key with an event type the handlers cannot apply
    is left alone and counted as unhandled. With --once, exits 1 unless every due record was restored."""
    interval = once_or_every(once, every)
    configure_logging("INFO", log_format)
    registry = load_handlers(app)  # before anything else: a wrong --app changes nothing
    settings = load_settings(url, schema)
    start_tracing(settings.tracing, "restore")
    engine = engine_for(settings, tables=RESTORE_TABLES)
    metrics = start_metrics(metrics_port, metrics_addr, settings.database_url, settings.db_schema, parts=("restore",))
    if metrics is not None:
        metrics.restore_store("listener")

    with async_engine_for(engine, registry) as async_engine:  # async handlers: restored like sync ones

        def run() -> bool:
            chosen: list[str | None] = [None]

            def once() -> RunReport:
                # per run: records of new groups may appear
                chosen[0] = resolve_group(engine, group, settings)
                if chosen[0] is None:
                    return RunReport()
                return listener_run_once(
                    settings, engine, registry=registry, group=chosen[0], async_engine=async_engine
                )

            report = _measured("listener", metrics, once)
            if chosen[0] is None:
                say("restore listener: no open listener dead letters")
                return True
            return _report("listener", report, group=chosen[0])

        _schedule(once, interval, run)
