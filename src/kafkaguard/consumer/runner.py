"""Build a running consumer from settings: engines, the Kafka source, the applier and the worker.

``load_registry("module:attr")`` imports a :class:`HandlerRegistry` (or an object with a
``registry`` attribute, e.g. a service's app object) for the ``kafkaguard consume`` command.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kafkaguard.consumer.apply import Applier
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.dlq import DlqCopier
from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.registry import HandlerRegistry, load_registry
from kafkaguard.consumer.source import MessageSource
from kafkaguard.consumer.worker import Worker
from kafkaguard.db.engine import async_engine, sync_engine
from kafkaguard.db.readiness import CONSUMER_TABLES, require_engine_tables
from kafkaguard.errors import ConfigurationError
from kafkaguard.process_gc import DEFAULT_GC_THRESHOLD, tune_gc
from kafkaguard.process_memory import FreedMemoryTrimmer
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.signals import on_stop_signals
from kafkaguard.stores.by_database import consumer_store_for
from kafkaguard.stores.inbox import ConsumerStore
from kafkaguard.stores.mongo_documents import is_mongo_url
from kafkaguard.tracing import spans

__all__ = ["build_worker", "load_registry", "run_until_signalled"]

log = logging.getLogger("kafkaguard.consumer")


def build_worker(
    settings: KafkaguardSettings,
    registry: HandlerRegistry,
    *,
    on_outcome: Callable[[Record, Outcome], None] | None = None,
    source: MessageSource | None = None,
    store: ConsumerStore | None = None,
) -> Worker:
    """A :class:`Worker` for ``settings.consumer`` reading ``settings.consumer.topics``
    (:meth:`Worker.from_settings`).

    ``on_outcome`` is called after each message's outcome is durable (metrics, tests); ``source``
    replaces the Kafka consumer; ``store`` replaces the PostgreSQL store (e.g. a
    :class:`~kafkaguard.testing.MemoryConsumerStore`; no database URL is needed then).
    Raises :class:`~kafkaguard.errors.SchemaNotReadyError` when the database answers without
    kafkaguard's tables in ``settings.db_schema`` (an unreachable one is waited for by the worker).
    """
    spans.configure(settings.tracing)
    cs = settings.consumer
    if not cs.topics and source is None:
        raise ConfigurationError("no topics to consume: pass --topic or set KAFKAGUARD_CONSUMER__TOPICS")
    store = store or _database_store(settings, registry)
    copier = DlqCopier(settings.bootstrap_servers, settings.kafka_producer_overrides()) if cs.dlq_topic else None
    applier = Applier(store, registry, cs, stop=threading.Event(), on_dead_letter=copier)
    if source is None:
        source = KafkaSource(
            settings.bootstrap_servers,
            cs.group_id,
            cs.topics,
            overrides=settings.kafka_consumer_overrides(),
            instance_id=cs.instance_id,
            group_protocol=cs.group_protocol,
        )
    return Worker(source, applier, on_outcome=on_outcome)


def _database_store(settings: KafkaguardSettings, registry: HandlerRegistry) -> ConsumerStore:
    """The consumer store of ``settings.database_url`` (an async engine too for ``async def`` handlers)."""
    if not settings.database_url:
        raise ConfigurationError("a database URL is needed (--url or KAFKAGUARD_DATABASE_URL)")
    if is_mongo_url(settings.database_url):  # a document store: indexes instead of migrations
        from kafkaguard.stores.mongo_consumer import MongoConsumerStore

        return MongoConsumerStore.from_url(settings.database_url)
    engine = sync_engine(settings.database_url, schema=settings.db_schema, pool_size=2)
    require_engine_tables(engine, settings.db_schema, CONSUMER_TABLES, if_reachable=True)
    aengine = async_engine(settings.database_url, schema=settings.db_schema) if registry.has_async else None
    return consumer_store_for(engine, aengine)


def run_until_signalled(worker: Worker, *, gc_threshold: int = DEFAULT_GC_THRESHOLD) -> None:
    """Run ``worker`` in this thread; SIGTERM and SIGINT stop it gracefully (commit, leave the group).

    The process is the worker's own, so it first tunes the garbage collector
    (:func:`~kafkaguard.process_gc.tune_gc` with ``gc_threshold``, the ``gc_threshold`` setting):
    every object alive now (imported modules, SQLAlchemy's and pydantic's structures: ~130,000
    objects) is frozen out of its reach, since re-scanning them in every full collection cost 10-15 %
    of batch mode's time, and young collections come every ``gc_threshold`` allocations, not 700.
    Objects created later are collected as usual. ``gc_threshold`` 0 leaves the collector alone.

    It also gives freed C-heap memory back to the OS once a second (:mod:`kafkaguard.process_memory`):
    without it a worker working off a large backlog held ~50 MB more than with a small one.
    """
    tune_gc(gc_threshold)

    trim = FreedMemoryTrimmer()
    tick = worker.on_tick

    def on_tick() -> None:
        if tick is not None:
            tick()
        trim()

    worker.on_tick = on_tick
    on_stop_signals(worker.stop, "consumer")
    worker.run()
