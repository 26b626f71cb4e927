"""``kafkaguard consume``: run a consumer worker for a handler registry.

The consumer group has no default here: offsets, the inbox and the dead letters are all kept per
group, so a silent ``kafkaguard`` default would read from the start under a group nobody meant
(or share one with another service). Pass ``--group`` or set ``consumer.group_id``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kafkaguard.cli.common import (
    BootstrapAliasOpt,
    BootstrapOpt,
    LogFormatOpt,
    MetricsAddrOpt,
    MetricsPortOpt,
    bootstrap_option,
    start_metrics,
)
from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.cli.listener_restore import configured_group
from kafkaguard.cli.startup import announce, configure_logging, preflight
from kafkaguard.consumer.runner import build_worker, run_until_signalled
from kafkaguard.metrics.consumer_hook import lag_reporter, outcome_counter, retry_counter, store_outage_counter
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.tracing.setup import check_exporter, start_tracing


def consume(
    target: Annotated[
        str, typer.Argument(help="module:attribute of a HandlerRegistry (or of an object with .registry)")
    ],
    group: Annotated[
        str | None,
        typer.Option("--group", help="Consumer group (required unless set) \\[env KAFKAGUARD_CONSUMER__GROUP_ID]."),
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="Topic to read; repeatable \\[env KAFKAGUARD_CONSUMER__TOPICS].")
    ] = None,
    bootstrap: BootstrapOpt = None,
    url: Annotated[str | None, typer.Option("--url", help="SQLAlchemy URL \\[env KAFKAGUARD_DATABASE_URL].")] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema of kafkaguard's tables \\[env KAFKAGUARD_DB_SCHEMA].")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            min=1,
            help="Messages per transaction (1 = per event) \\[env KAFKAGUARD_CONSUMER__BATCH_SIZE].",
        ),
    ] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Static membership: a restart with the same id gets its partitions back at once; unique per "
            "running consumer \\[env KAFKAGUARD_CONSUMER__INSTANCE_ID].",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ...")] = "INFO",
    log_format: LogFormatOpt = None,
    metrics_port: MetricsPortOpt = None,
    metrics_addr: MetricsAddrOpt = "127.0.0.1",
    bootstrap_alias: BootstrapAliasOpt = None,
) -> None:
    """Consume events and apply them exactly once; SIGTERM stops gracefully (commit, leave the group)."""
    configure_logging(log_level, log_format)
    bootstrap = bootstrap_option(bootstrap, bootstrap_alias)
    base = KafkaguardSettings()
    check_exporter(base.tracing)
    if group is None and configured_group(base) is None:
        raise UsageProblem(
            "pass --group (or set KAFKAGUARD_CONSUMER__GROUP_ID): offsets, inbox and dead letters are kept per "
            "consumer group, so there is no default"
        )
    updates = {"group_id": group, "topics": tuple(topic) if topic else None, "batch_size": batch_size,
               "instance_id": instance_id}  # fmt: skip
    consumer = base.consumer.model_copy(update={k: v for k, v in updates.items() if v is not None})
    top = {"consumer": consumer, "bootstrap_servers": bootstrap, "database_url": url, "db_schema": schema}
    settings = base.model_copy(update={k: v for k, v in top.items() if v is not None})
    registry = load_handlers(target, option="TARGET")
    cs = settings.consumer
    announce(
        "consumer", bootstrap=settings.bootstrap_servers, database_url=settings.database_url,
        schema=settings.db_schema, group=cs.group_id, topics=cs.topics,
        extra={"instance id": cs.instance_id} if cs.instance_id else None,
    )  # fmt: skip
    # The database login only: the consumer's own client waits for Kafka, saying so once per
    # interval, and stops at once if Kafka refuses its credentials.
    preflight("consumer", bootstrap=settings.bootstrap_servers, database_url=settings.database_url,
              schema=settings.db_schema, wait_for_kafka=False)  # fmt: skip
    metrics = start_metrics(
        metrics_port or settings.metrics_port, metrics_addr, settings.database_url, settings.db_schema,
        parts=("consumer",),
    )  # fmt: skip
    worker = build_worker(settings, registry)
    if metrics is not None:
        worker.on_outcome = outcome_counter(metrics, cs.group_id)
        worker.on_store_outage = store_outage_counter(metrics)
        worker.applier.on_retry = retry_counter(metrics, cs.group_id)
        lag = getattr(worker.source, "lag", None)  # KafkaSource has it; in-memory sources do not
        if lag is not None:
            worker.on_tick = lag_reporter(metrics, cs.group_id, lag)
    end_tracing = start_tracing(settings.tracing, "consume")
    try:
        run_until_signalled(worker, gc_threshold=settings.gc_threshold)
    finally:
        end_tracing()
