"""``kafkaguard relay``: run one outbox relay instance (or ``--processes N`` of them) until SIGTERM or Ctrl-C.

Run as many instances as you like (one per pod or process): they share the outbox's 64 shards
through PostgreSQL advisory locks, and the survivors take a stopped or killed instance's shards.
``--processes N`` starts N such instances as child processes of this one
(:mod:`kafkaguard.relay.processes`): one command, N GILs.
"""

from __future__ import annotations

import threading
from functools import partial
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
from kafkaguard.cli.startup import announce, configure_logging, preflight
from kafkaguard.errors import ConfigurationError
from kafkaguard.metrics.relay_hook import relay_metrics
from kafkaguard.process_gc import tune_gc
from kafkaguard.relay.processes import run_processes
from kafkaguard.relay.settings import RelayKind
from kafkaguard.relay.worker import Relay
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.signals import on_stop_signals
from kafkaguard.tracing.setup import check_exporter, start_tracing


def relay(
    url: Annotated[str | None, typer.Option("--url", help="SQLAlchemy URL \\[env KAFKAGUARD_DATABASE_URL].")] = None,
    schema: Annotated[
        str | None, typer.Option("--schema", help="Schema of the outbox \\[env KAFKAGUARD_DB_SCHEMA].")
    ] = None,
    bootstrap: BootstrapOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Rows per round \\[env KAFKAGUARD_RELAY__BATCH_SIZE].")] = None,
    poll_interval: Annotated[
        float | None, typer.Option(help="Seconds between polls without NOTIFY \\[env KAFKAGUARD_RELAY__POLL_INTERVAL].")
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Relay processes to run, sharing the shards (N GILs) \\[env KAFKAGUARD_RELAY__PROCESSES].",
        ),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Instance name for logs (default relay-<pid>).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ...")] = "INFO",
    log_format: LogFormatOpt = None,
    metrics_port: MetricsPortOpt = None,
    metrics_addr: MetricsAddrOpt = "127.0.0.1",
    bootstrap_alias: BootstrapAliasOpt = None,
) -> None:
    """Publish the outbox to Kafka: per-key order, at-least-once, rows removed only after the ack."""
    configure_logging(log_level, log_format)
    bootstrap = bootstrap_option(bootstrap, bootstrap_alias)
    settings = KafkaguardSettings()
    check_exporter(settings.tracing)
    if settings.relay.kind is RelayKind.DEBEZIUM:
        raise ConfigurationError(
            "relay.kind is 'debezium': Debezium relays this outbox (rows are deleted as they are written), "
            "so kafkaguard's relay must not run; set KAFKAGUARD_RELAY__KIND=kafkaguard to switch back"
        )
    database_url = url or settings.database_url
    if not database_url:
        raise ConfigurationError("a database URL is needed (--url or KAFKAGUARD_DATABASE_URL)")
    updates: dict[str, object] = {}
    if batch_size is not None:
        updates["batch_size"] = batch_size
    if poll_interval is not None:
        updates["poll_interval"] = poll_interval
    if processes is not None:
        updates["processes"] = processes
    relay_settings = settings.relay.model_copy(update=updates)
    servers = bootstrap or settings.bootstrap_servers
    db_schema = schema or settings.db_schema
    announce("relay", bootstrap=servers, database_url=database_url, schema=db_schema,
             extra={"name": name} if name else None)  # fmt: skip
    stop = threading.Event()
    on_stop_signals(stop.set, "relay")
    if not preflight("relay", bootstrap=servers, database_url=database_url, schema=db_schema,
                     kafka_overrides=settings.kafka_producer_overrides(), stop=stop):  # fmt: skip
        return
    resolved = settings.model_copy(
        update={"database_url": database_url, "db_schema": db_schema, "bootstrap_servers": servers,
                "relay": relay_settings}
    )  # fmt: skip
    port = metrics_port or settings.metrics_port
    if relay_settings.processes == 1:
        metrics = start_metrics(port, metrics_addr, database_url, db_schema, parts=("relay",))
        end_tracing = start_tracing(settings.tracing, "relay")
        try:
            relay_instance = Relay.from_settings(resolved, name=name, hook=relay_metrics(metrics))
            tune_gc(settings.gc_threshold)  # after startup: its objects are frozen out of collections
            relay_instance.run(stop)
        finally:
            end_tracing()
        return
    child = partial(_relay_process, resolved, name or "relay", port, metrics_addr, log_level, log_format)
    code = run_processes(child, relay_settings.processes, stop)
    if code:
        raise typer.Exit(code)


def _relay_process(
    settings: KafkaguardSettings,
    name: str,
    metrics_port: int | None,
    metrics_addr: str,
    log_level: str,
    log_format: str | None,
    index: int,
) -> None:
    """One child of ``--processes N``: an ordinary relay instance named ``<name>-<index>``; with a
    metrics port, child ``index`` serves its own counters on ``port + index``."""
    configure_logging(log_level, log_format)
    stop = threading.Event()
    on_stop_signals(stop.set, f"relay {name}-{index}")
    port = None if metrics_port is None else metrics_port + index
    metrics = start_metrics(port, metrics_addr, settings.database_url or "", settings.db_schema, parts=("relay",))
    end_tracing = start_tracing(settings.tracing, "relay")
    try:
        relay_instance = Relay.from_settings(settings, name=f"{name}-{index}", hook=relay_metrics(metrics))
        tune_gc(settings.gc_threshold)
        relay_instance.run(stop)
    finally:
        end_tracing()
