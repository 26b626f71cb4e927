"""``kafkaguard consume``: run a consumer worker for a handler registry."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from kafkaguard.cli.common import MetricsAddrOpt, MetricsPortOpt, start_metrics
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.consumer.runner import build_worker, run_until_signalled
from kafkaguard.metrics.consumer_hook import lag_reporter, outcome_counter
from kafkaguard.settings import KafkaguardSettings


def consume(
    target: Annotated[
        str, typer.Argument(help="module:attribute of a HandlerRegistry (or of an object with .registry)")
    ],
    group: Annotated[
        str | None, typer.Option("--group", help="Consumer group [env KAFKAGUARD_CONSUMER__GROUP_ID].")
    ] = None,
    topic: Annotated[list[str] | None, typer.Option("--topic", help="Topic to read; repeatable.")] = None,
    bootstrap: Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="SQLAlchemy URL (env KAFKAGUARD_DATABASE_URL).")] = None,
    schema: Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Messages per transaction (1 = per event).")
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
    metrics_port: MetricsPortOpt = None,
    metrics_addr: MetricsAddrOpt = "127.0.0.1",
) -> None:
    """Consume events and apply them exactly once; SIGTERM stops gracefully (commit, leave the group)."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    base = KafkaguardSettings()
    consumer = base.consumer.model_copy(
        update={
            k: v
            for k, v in {
                "group_id": group,
                "topics": tuple(topic) if topic else None,
                "batch_size": batch_size,
            }.items()
            if v is not None
        }
    )
    settings = base.model_copy(
        update={
            k: v
            for k, v in {
                "consumer": consumer,
                "bootstrap_servers": bootstrap,
                "database_url": url,
                "db_schema": schema,
            }.items()
            if v is not None
        }
    )
    registry = load_handlers(target, option="TARGET")
    metrics = start_metrics(
        metrics_port or settings.metrics_port, metrics_addr, settings.database_url, settings.db_schema
    )
    worker = build_worker(settings, registry)
    if metrics is not None:
        worker.on_outcome = outcome_counter(metrics, settings.consumer.group_id)
        lag = getattr(worker.source, "lag", None)  # KafkaSource has it; in-memory sources do not
        if lag is not None:
            worker.on_tick = lag_reporter(metrics, settings.consumer.group_id, lag)
    run_until_signalled(worker)
