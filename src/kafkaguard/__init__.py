"""kafkaguard: move domain events from a database through Kafka into other databases,
without losing one and without applying one twice.

The public API is exactly ``__all__``; everything else is internal and may change.

``import kafkaguard`` is cheap: the errors are imported at once, every other public name on first
use (``from kafkaguard import Worker`` imports the consumer then). So a process that only needs,
say, the outbox writers never imports the HTTP, metrics or CLI libraries, and
:func:`receiving_router` and :func:`install_exception_handlers` are the names that need the ``http``
extra (FastAPI): ``pip install 'kafkaguard[http]'``; :func:`create_console_app` (the operator console,
``kafkaguard console``) needs the ``console`` extra (FastAPI, Jinja2, uvicorn).

What an application uses, all from here:

- settings: :class:`KafkaguardSettings` (``KAFKAGUARD_*`` and a TOML file) and its parts
  (:class:`ConsumerSettings`, :class:`RelaySettings`, :class:`PublishSettings`, :class:`RestoreSettings`,
  :class:`TopicSettings`, :class:`RetryPolicy` with :class:`Fixed` / :class:`Exponential` /
  :class:`Schedule`, :class:`ErrorClassifier`, :class:`HttpAuth` for ``http`` mode's authentication);
- builders: ``Publisher.from_settings(settings)``, ``Worker.from_settings(settings, registry)``,
  ``Relay.from_settings(settings)``, ``PublisherRestoreJob.from_settings(settings)``,
  ``ListenerRestoreJob.from_settings(settings, registry)``;
- document stores (the ``mongo`` extra, pymongo): :class:`MongoConsumerStore` (consumer inbox and
  listener dead letters) and :class:`MongoPublisherDeadLetters`; a ``mongodb://`` database URL
  gives the builders the first;
- events and handlers: :class:`Event`, :class:`HandlerRegistry` (typed handlers with ``model=``,
  per-handler ``retry=``), :class:`HandlerContext`, :class:`BatchContext`;
- every error it can meet, all under :class:`KafkaguardError`;
- :func:`tune_gc`: the garbage-collector setting the worker commands apply, for a process that
  embeds a component.

``kafkaguard.testing`` is public too: pytest fixtures with the real Kafka and PostgreSQL
(``kafkaguard.testing.fixtures``) and the helpers in its ``__all__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kafkaguard.errors import (
    AuthenticationError,
    ConfigurationError,
    ConsumerError,
    DeadLetterNotFoundError,
    DecodeError,
    DecodeReason,
    DeliveryTimeoutError,
    DevStackError,
    EnvelopeError,
    EventRejectedError,
    IdConflictError,
    KafkaguardError,
    KafkaUnavailableError,
    KeyHeldError,
    PayloadValidationError,
    PortInUseError,
    PublishError,
    PublishUnavailableError,
    SchemaNotReadyError,
    StartTimeoutError,
    StoreUnavailableError,
    ToolMissingError,
    UnknownEventTypeError,
)

if TYPE_CHECKING:
    from kafkaguard.console.app import create_console_app
    from kafkaguard.console.settings import ConsoleSettings
    from kafkaguard.consumer import (
        BatchContext,
        HandlerContext,
        HandlerRegistry,
        Outcome,
        Position,
        Worker,
    )
    from kafkaguard.consumer.http import receiving_router
    from kafkaguard.consumer.settings import ConsumerSettings
    from kafkaguard.db.engine import create_async_engine, create_engine
    from kafkaguard.envelope import Event
    from kafkaguard.http_signing import HttpAuth
    from kafkaguard.interfaces.http import install_exception_handlers
    from kafkaguard.policies.backoff import Exponential, Fixed, Schedule
    from kafkaguard.policies.classify import ErrorClassifier
    from kafkaguard.policies.retry import RetryPolicy
    from kafkaguard.process_gc import tune_gc
    from kafkaguard.publisher.facade import Publisher, PublishOutcome
    from kafkaguard.publisher.settings import PublishMode, PublishSettings
    from kafkaguard.relay.settings import RelayKind, RelaySettings
    from kafkaguard.relay.worker import Relay
    from kafkaguard.restore.listener_functions import (
        RestoreResult,
        due_keys,
        restore_key,
        restore_key_async,
        retry_dead_letter,
        retry_dead_letter_async,
    )
    from kafkaguard.restore.listener_job import ListenerRestoreJob
    from kafkaguard.restore.publisher_job import PublisherRestoreJob
    from kafkaguard.restore.report import RunReport
    from kafkaguard.restore.schedule import run_every
    from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
    from kafkaguard.settings import KafkaguardSettings, TopicSettings
    from kafkaguard.stores.mongo_consumer import MongoConsumerStore
    from kafkaguard.stores.mongo_publisher_dead_letters import MongoPublisherDeadLetters
    from kafkaguard.stores.outbox import add_event, add_event_async, add_events, add_events_async

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BatchContext",
    "ConfigurationError",
    "ConsoleSettings",
    "ConsumerError",
    "ConsumerSettings",
    "DeadLetterNotFoundError",
    "DecodeError",
    "DecodeReason",
    "DeliveryTimeoutError",
    "DevStackError",
    "EnvelopeError",
    "ErrorClassifier",
    "Event",
    "EventRejectedError",
    "Exponential",
    "Fixed",
    "HandlerContext",
    "HandlerRegistry",
    "HttpAuth",
    "IdConflictError",
    "KafkaUnavailableError",
    "KafkaguardError",
    "KafkaguardSettings",
    "KeyHeldError",
    "ListenerRestoreJob",
    "MongoConsumerStore",
    "MongoPublisherDeadLetters",
    "Outcome",
    "PayloadValidationError",
    "PortInUseError",
    "Position",
    "PublishError",
    "PublishMode",
    "PublishOutcome",
    "PublishSettings",
    "PublishUnavailableError",
    "Publisher",
    "PublisherRestoreJob",
    "PublisherStrategy",
    "Relay",
    "RelayKind",
    "RelaySettings",
    "RestoreResult",
    "RestoreSettings",
    "RetryPolicy",
    "RunReport",
    "Schedule",
    "SchemaNotReadyError",
    "StartTimeoutError",
    "StoreUnavailableError",
    "ToolMissingError",
    "TopicSettings",
    "UnknownEventTypeError",
    "Worker",
    "__version__",
    "add_event",
    "add_event_async",
    "add_events",
    "add_events_async",
    "create_async_engine",
    "create_console_app",
    "create_engine",
    "due_keys",
    "install_exception_handlers",
    "receiving_router",
    "restore_key",
    "restore_key_async",
    "retry_dead_letter",
    "retry_dead_letter_async",
    "run_every",
    "tune_gc",
]

# Public name -> the module it is imported from on first use (keep the TYPE_CHECKING block in step).
_LAZY: dict[str, str] = {
    "BatchContext": "kafkaguard.consumer",
    "HandlerContext": "kafkaguard.consumer",
    "HandlerRegistry": "kafkaguard.consumer",
    "Outcome": "kafkaguard.consumer",
    "RestoreResult": "kafkaguard.restore.listener_functions",
    "Worker": "kafkaguard.consumer",
    "due_keys": "kafkaguard.restore.listener_functions",
    "restore_key": "kafkaguard.restore.listener_functions",
    "retry_dead_letter": "kafkaguard.restore.listener_functions",
    "Position": "kafkaguard.consumer",
    "restore_key_async": "kafkaguard.restore.listener_functions",
    "retry_dead_letter_async": "kafkaguard.restore.listener_functions",
    "create_engine": "kafkaguard.db.engine",
    "create_async_engine": "kafkaguard.db.engine",
    "receiving_router": "kafkaguard.consumer.http",
    "ConsumerSettings": "kafkaguard.consumer.settings",
    "Event": "kafkaguard.envelope",
    "HttpAuth": "kafkaguard.http_signing",
    "install_exception_handlers": "kafkaguard.interfaces.http",
    "create_console_app": "kafkaguard.console.app",
    "ConsoleSettings": "kafkaguard.console.settings",
    "Exponential": "kafkaguard.policies.backoff",
    "Fixed": "kafkaguard.policies.backoff",
    "Schedule": "kafkaguard.policies.backoff",
    "ErrorClassifier": "kafkaguard.policies.classify",
    "RetryPolicy": "kafkaguard.policies.retry",
    "Publisher": "kafkaguard.publisher.facade",
    "PublishOutcome": "kafkaguard.publisher.facade",
    "add_event": "kafkaguard.stores.outbox",
    "add_event_async": "kafkaguard.stores.outbox",
    "add_events": "kafkaguard.stores.outbox",
    "add_events_async": "kafkaguard.stores.outbox",
    "PublishMode": "kafkaguard.publisher.settings",
    "PublishSettings": "kafkaguard.publisher.settings",
    "RelayKind": "kafkaguard.relay.settings",
    "RelaySettings": "kafkaguard.relay.settings",
    "Relay": "kafkaguard.relay.worker",
    "ListenerRestoreJob": "kafkaguard.restore.listener_job",
    "PublisherRestoreJob": "kafkaguard.restore.publisher_job",
    "RunReport": "kafkaguard.restore.report",
    "run_every": "kafkaguard.restore.schedule",
    "tune_gc": "kafkaguard.process_gc",
    "PublisherStrategy": "kafkaguard.restore.settings",
    "RestoreSettings": "kafkaguard.restore.settings",
    "KafkaguardSettings": "kafkaguard.settings",
    "TopicSettings": "kafkaguard.settings",
    "MongoConsumerStore": "kafkaguard.stores.mongo_consumer",
    "MongoPublisherDeadLetters": "kafkaguard.stores.mongo_publisher_dead_letters",
}

# Libraries that only the ``http`` and ``console`` extras install; a missing one gets a hint instead of a bare
# ModuleNotFoundError.
_HTTP_EXTRA = frozenset({"fastapi", "starlette", "uvicorn", "jinja2", "markupsafe"})
_CONSOLE_NAMES = frozenset({"create_console_app"})
_MONGO_EXTRA = frozenset({"pymongo", "bson"})  # the ``mongo`` extra (the document-store adapters)


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module, so the next lookup is a plain one."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kafkaguard' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        root = exc.name.partition(".")[0] if exc.name else ""
        if root in _HTTP_EXTRA or root in _MONGO_EXTRA:
            extra = "mongo" if root in _MONGO_EXTRA else "console" if name in _CONSOLE_NAMES else "http"
            raise ImportError(
                f"kafkaguard.{name} needs {exc.name}, which is not installed: pip install 'kafkaguard[{extra}]'",
                name=exc.name,
            ) from exc
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
