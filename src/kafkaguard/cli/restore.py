"""``kafkaguard restore publisher|listener``: process due dead letters once or on a schedule."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import typer

from kafkaguard.cli.common import MetricsAddrOpt, MetricsPortOpt, engine_for, load_settings, out, start_metrics
from kafkaguard.cli.restore_runners import publisher_job
from kafkaguard.metrics import Metrics
from kafkaguard.restore.publisher_job import RunReport
from kafkaguard.restore.schedule import parse_interval, run_every
from kafkaguard.restore.settings import PublisherStrategy

restore_app = typer.Typer(help="Restore jobs: due dead letters back to Kafka or through the handlers.")

UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL [env KAFKAGUARD_DATABASE_URL].")]
SchemaOpt = Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")]
OnceOpt = Annotated[bool, typer.Option("--once", help="One run, then exit (a Kubernetes CronJob).")]
EveryOpt = Annotated[str | None, typer.Option("--every", help="Run on a schedule, e.g. 60s (until SIGTERM).")]


def _report(store: str, report: RunReport, metrics: Metrics | None = None) -> None:
    if metrics is not None:
        for outcome in ("restored", "retried", "failed"):
            metrics.restore_outcomes.labels(store, outcome).inc(getattr(report, outcome))
    out.print(
        f"restore {store}: restored={report.restored} retried={report.retried} "
        f"failed={report.failed} skipped_keys={report.skipped_keys}"
    )


def _schedule(once: bool, every: str | None, job: Callable[[], None]) -> None:
    if once == (every is not None):
        raise typer.BadParameter("pass exactly one of --once or --every")
    if once:
        job()
    else:
        assert every is not None
        run_every(parse_interval(every), job)


@restore_app.command("publisher")
def publisher(
    once: OnceOpt = False, every: EveryOpt = None,
    strategy: Annotated[PublisherStrategy | None, typer.Option(help="republish | handoff.")] = None,
    handoff_group: Annotated[str | None, typer.Option(help="Consumer group receiving handed-off events.")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
    metrics_port: MetricsPortOpt = None, metrics_addr: MetricsAddrOpt = "127.0.0.1",
) -> None:  # fmt: skip
    """Republish due publisher dead letters to Kafka (or hand them to the listener store), per-key order."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(url, schema)
    if strategy is not None or handoff_group is not None:
        restore = settings.restore.model_copy(
            update={k: v for k, v in {"publisher_strategy": strategy, "handoff_group": handoff_group}.items() if v}
        )
        settings = settings.model_copy(update={"restore": restore})
    engine = engine_for(settings)
    job = publisher_job(settings, engine)
    metrics = start_metrics(metrics_port, metrics_addr, settings.database_url, settings.db_schema)

    def run() -> None:
        _report("publisher", job.run_once(), metrics)

    _schedule(once, every, run)


@restore_app.command("listener")
def listener(
    app: Annotated[str, typer.Option(help="module:registry of the consumer's handlers.")],
    once: OnceOpt = False, every: EveryOpt = None,
    group: Annotated[str | None, typer.Option(help="Consumer group [env KAFKAGUARD_CONSUMER__GROUP_ID].")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
    metrics_port: MetricsPortOpt = None, metrics_addr: MetricsAddrOpt = "127.0.0.1",
) -> None:  # fmt: skip
    """Re-run the handlers for due listener dead letters through the inbox path, per-key order."""
    from kafkaguard.cli.listener_restore import listener_run_once

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(url, schema)
    if group:
        settings = settings.model_copy(update={"consumer": settings.consumer.model_copy(update={"group_id": group})})
    engine = engine_for(settings)
    metrics = start_metrics(metrics_port, metrics_addr, settings.database_url, settings.db_schema)

    def run() -> None:
        _report("listener", listener_run_once(settings, engine, app=app), metrics)

    _schedule(once, every, run)
