"""``kafkaguard forward``: a Kafka-to-Kafka transform with a transactional producer (exactly-once in Kafka)."""

from __future__ import annotations

import importlib
import threading
from typing import Annotated

import typer

from kafkaguard.cli.common import BootstrapAliasOpt, BootstrapOpt, LogFormatOpt, bootstrap_option, err
from kafkaguard.cli.startup import announce, configure_logging, preflight
from kafkaguard.consumer.transactional import TransactionalForwarder, Transform
from kafkaguard.errors import ConfigurationError
from kafkaguard.process_gc import tune_gc
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.signals import on_stop_signals


def _load(spec: str) -> Transform:
    module, _, attr = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"cannot load transform {spec!r} (module:function): {exc}") from exc
    if not callable(func):
        raise ConfigurationError(f"{spec!r} is not callable")
    transform: Transform = func
    return transform


def forward(
    transform: Annotated[str, typer.Argument(help="module:function taking an Event, returning [(topic, Event)].")],
    group: Annotated[str, typer.Option("--group", help="Consumer group.")],
    topic: Annotated[list[str], typer.Option("--topic", help="Input topic; repeatable.")],
    transactional_id: Annotated[str, typer.Option("--transactional-id", help="Stable per instance.")],
    bootstrap: BootstrapOpt = None,
    batch_size: Annotated[int, typer.Option(help="Inputs per transaction.")] = 200,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ...")] = "INFO",
    log_format: LogFormatOpt = None,
    bootstrap_alias: BootstrapAliasOpt = None,
) -> None:
    """Consume, transform and produce with offsets in the same Kafka transaction, until SIGTERM."""
    configure_logging(log_level, log_format)
    settings = KafkaguardSettings()
    servers = bootstrap_option(bootstrap, bootstrap_alias) or settings.bootstrap_servers
    function = _load(transform)
    announce("forwarder", bootstrap=servers, group=group, topics=topic,
             extra={"transactional id": transactional_id})  # fmt: skip
    stop = threading.Event()
    on_stop_signals(stop.set, "forwarder")
    if not preflight("forwarder", bootstrap=servers, kafka_overrides=settings.kafka_consumer_overrides(), stop=stop):
        return
    forwarder = TransactionalForwarder(
        servers, group, topic, transactional_id, function,
        batch_size=batch_size, classifier=settings.consumer.classifier,
        consumer_overrides=settings.kafka_consumer_overrides(), producer_overrides=settings.kafka_producer_overrides(),
    )  # fmt: skip
    tune_gc(settings.gc_threshold)
    forwarder.run(stop)
    err.print(f"forwarder stopped: {forwarder.stats}")
