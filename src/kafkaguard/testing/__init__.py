"""Test support, public like :mod:`kafkaguard`: its API is this ``__all__`` and the pytest fixtures.

- the in-memory test kit, for tests of YOUR handlers: :class:`Pipeline` wires the real publisher,
  relay, consumer and listener restore job over the fakes below (no Kafka, no JVM, no PostgreSQL;
  your handler's session may be SQLite): ``kit = Pipeline(registry, sessions=sessionmaker(engine))``,
  ``kit.publish(event)``, ``kit.deliver()``, ``kit.redeliver()``, ``kit.dead_letters()``,
  ``kit.parked(key)``, ``kit.restore()``;
- real-stack pytest fixtures (NOT in memory), for integration tests: they start (or, with
  ``KAFKAGUARD_TEST_REUSE_STACK=1``, reuse) the real Kafka and PostgreSQL and give each test its own
  topics and schema: ``pytest_plugins =
  ["kafkaguard.testing.fixtures"]`` (``kafka_bootstrap``, ``postgres``, ``topics``, ``database``,
  ``migrated_database``, ``dedicated_kafka``, ``dedicated_postgres``);
- the in-memory fakes the kit is made of, for tests of your own wiring: :class:`MemoryOutbox` (the
  outbox, both the publisher's and the relay's side;
  ``Relay(outbox=MemoryOutbox(), producer=...)`` runs rounds without PostgreSQL) and
  :class:`MemoryPublisherDeadLetters` (for ``PublisherRestoreJob``), and :class:`MemoryConsumerStore`
  (inbox and listener dead letters: ``Worker.from_settings(settings, registry, source=...,
  store=MemoryConsumerStore())`` and ``ListenerRestoreJob``; set ``down`` for an outage);
- the in-memory consumer source for unit tests: ``Worker.from_settings(settings, registry,
  source=MemorySource([Record(...), ...]))``;
- the in-memory producer for unit tests: ``Publisher(settings, producer=MemoryProducer())``, then
  ``producer.messages(topic)``; faults by ``reject(...)`` and ``time_out(...)``;
- helpers for tests and demos that run services against a local stack: :class:`DevStack` (what
  ``kafkaguard dev up`` starts), :func:`upgrade_database` (``kafkaguard db upgrade``),
  :func:`ensure_topics` / :func:`delete_topics`, :func:`free_ports`, :func:`poll` (wait for a
  condition with a deadline, never a bare sleep) and :class:`ServiceProcess`.

Names are imported on first use, so ``import kafkaguard.testing`` imports neither pytest nor a client library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkaguard.consumer.records import Record
    from kafkaguard.consumer.source import MemorySource
    from kafkaguard.db.migrate import upgrade as upgrade_database
    from kafkaguard.devstack.process import free_ports, poll
    from kafkaguard.devstack.services import ServiceProcess
    from kafkaguard.devstack.stack import DevStack, default_run_dir
    from kafkaguard.testing.fakes.consumer_store import MemoryConsumerStore, MemoryStoreDown
    from kafkaguard.testing.fakes.outbox import MemoryOutbox
    from kafkaguard.testing.fakes.producer import MemoryProducer, StoredMessage
    from kafkaguard.testing.fakes.publisher_dead_letters import MemoryPublisherDeadLetters
    from kafkaguard.testing.fakes.retention import MemoryRetention
    from kafkaguard.testing.pipeline import Pipeline
    from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics

__all__ = [
    "DevStack",
    "MemoryConsumerStore",
    "MemoryOutbox",
    "MemoryProducer",
    "MemoryPublisherDeadLetters",
    "MemoryRetention",
    "MemorySource",
    "MemoryStoreDown",
    "Pipeline",
    "Record",
    "ServiceProcess",
    "StoredMessage",
    "default_run_dir",
    "delete_topics",
    "ensure_topics",
    "free_ports",
    "poll",
    "upgrade_database",
]

# Public name -> (module, attribute) imported on first use (keep the TYPE_CHECKING block in step).
_LAZY: dict[str, tuple[str, str]] = {
    "DevStack": ("kafkaguard.devstack.stack", "DevStack"),
    "MemoryOutbox": ("kafkaguard.testing.fakes.outbox", "MemoryOutbox"),
    "MemoryPublisherDeadLetters": ("kafkaguard.testing.fakes.publisher_dead_letters", "MemoryPublisherDeadLetters"),
    "MemoryRetention": ("kafkaguard.testing.fakes.retention", "MemoryRetention"),
    "MemoryProducer": ("kafkaguard.testing.fakes.producer", "MemoryProducer"),
    "MemoryConsumerStore": ("kafkaguard.testing.fakes.consumer_store", "MemoryConsumerStore"),
    "MemoryStoreDown": ("kafkaguard.testing.fakes.consumer_store", "MemoryStoreDown"),
    "MemorySource": ("kafkaguard.consumer.source", "MemorySource"),
    "Pipeline": ("kafkaguard.testing.pipeline", "Pipeline"),
    "Record": ("kafkaguard.consumer.records", "Record"),
    "ServiceProcess": ("kafkaguard.devstack.services", "ServiceProcess"),
    "StoredMessage": ("kafkaguard.testing.fakes.producer", "StoredMessage"),
    "default_run_dir": ("kafkaguard.devstack.stack", "default_run_dir"),
    "delete_topics": ("kafkaguard.transports.kafka_admin", "delete_topics"),
    "ensure_topics": ("kafkaguard.transports.kafka_admin", "ensure_topics"),
    "free_ports": ("kafkaguard.devstack.process", "free_ports"),
    "poll": ("kafkaguard.devstack.process", "poll"),
    "upgrade_database": ("kafkaguard.db.migrate", "upgrade"),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module."""
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kafkaguard.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, "fakes", "fixtures", "pipeline", "stacks"})
