"""kafkaguard's exception tree.

Every error a user can meet derives from :class:`KafkaguardError` and says what happened and
what to do. Client-library errors (confluent-kafka, psycopg, httpx) are converted at the adapter
boundary, so callers never need to import those libraries to handle a failure.

    KafkaguardError
    ├── ConfigurationError        bad settings or arguments; fix the input
    │   └── SchemaNotReadyError   kafkaguard's tables are missing in the schema (run `kafkaguard db upgrade`)
    ├── EnvelopeError             an Event was built with invalid fields (also a ValueError)
    ├── DecodeError               bytes from Kafka (or an HTTP body) are not an event; ``reason`` says why
    ├── AuthenticationError       PostgreSQL or Kafka refused the credentials; fatal at start, never retried
    ├── DevStackError             local Kafka/PostgreSQL tooling failed
    │   ├── ToolMissingError      java, mvn or apt-get not found
    │   ├── PortInUseError        a loopback port we need is taken
    │   └── StartTimeoutError     a process did not become ready in time (names its log)
    ├── PublishError              an event could not be handed to Kafka (or the receiving endpoint)
    │   ├── KafkaUnavailableError Kafka cannot be reached now; retrying later will help
    │   │   └── DeliveryTimeoutError  the broker did not acknowledge within the time budget
    │   ├── KeyHeldError          the key has an open publisher dead letter; this event waits behind it
    │   ├── EventRejectedError    this event is refused for good (too large, topic not authorised or
    │   │                         unknown, not serialisable, HTTP 4xx); retrying will not help
    │   └── PublishUnavailableError neither delivery nor the publisher dead-letter store worked; the
    │                             caller's transaction was rolled back (an HTTP layer answers 503)
    └── ConsumerError             the consumer could not read, apply or commit
        ├── StoreUnavailableError PostgreSQL (inbox / dead-letter store) is unreachable; retried
        ├── UnknownEventTypeError no handler is registered for an event's type
        ├── IdConflictError       an event id arrived again with different content (not a duplicate)
        ├── PayloadValidationError a typed handler's model refused the payload; dead-lettered at once
        └── DeadLetterNotFoundError a restore named a dead letter that does not exist
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class KafkaguardError(Exception):
    """Root of every error raised by kafkaguard."""


class ConfigurationError(KafkaguardError):
    """Settings or arguments are invalid; the message names the field and the fix."""


class EnvelopeError(KafkaguardError, ValueError):
    """An event was built with invalid fields (empty type or key, a payload that is not a JSON object...)."""


class DecodeReason(StrEnum):
    """Why bytes from Kafka are not an event (stored as the listener dead letter's reason)."""

    MISSING_HEADER = "missing_header"
    UNDECODABLE = "undecodable"
    NOT_JSON = "not_json"
    WRONG_SHAPE = "wrong_shape"
    OVERSIZED = "oversized"
    MISSING_KEY = "missing_key"
    INVALID_KEY = "invalid_key"
    TOO_DEEP = "too_deep"
    UNREADABLE = "unreadable"  # the Kafka client could not even read the message (e.g. non-UTF-8 header names)


class DecodeError(KafkaguardError):
    """A Kafka message is not a valid kafkaguard event; ``reason`` says why."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class SchemaNotReadyError(ConfigurationError):
    """kafkaguard's tables are missing in the schema a component uses (not upgraded, or the wrong
    schema); the message names the schema and the ``kafkaguard db upgrade`` command to run."""


class AuthenticationError(KafkaguardError):
    """PostgreSQL or Kafka refused kafkaguard's credentials (wrong password, unknown user, SASL failure).

    Not an outage: waiting does not help, so a worker stops at start with this one line (which
    names the server and the user, never the password) instead of retrying.
    """


class DevStackError(KafkaguardError):
    """The local development stack (Kafka, PostgreSQL) could not be set up or controlled."""


class ToolMissingError(DevStackError):
    """A program the dev stack needs is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"'{tool}' was not found on PATH. {hint}")
        self.tool = tool


class PortInUseError(DevStackError):
    """A loopback port the dev stack wants is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(
            f"port {port} on 127.0.0.1 (for {what}) is taken by another process; "
            "stop that process or choose other ports (see `kafkaguard dev up --help`)"
        )
        self.port = port


class StartTimeoutError(DevStackError):
    """A process did not become ready within its deadline."""

    def __init__(self, what: str, seconds: float, log: Path | None) -> None:
        where = f"; read its log: {log}" if log is not None else ""
        super().__init__(f"{what} did not become ready within {seconds:.0f} s{where}")
        self.log = log


class PublishError(KafkaguardError):
    """An event could not be handed to Kafka."""


class KafkaUnavailableError(PublishError):
    """Kafka (or the receiving endpoint) cannot be reached now; the same event may succeed later."""


class DeliveryTimeoutError(KafkaUnavailableError):
    """The broker did not acknowledge the event within the time budget."""


class KeyHeldError(PublishError):
    """The event's key has an open publisher dead letter: the event is stored behind it (direct/http modes)
    so that the restore job delivers the key's events in order instead of this one overtaking them."""


class EventRejectedError(PublishError):
    """The event is refused for good (record too large, topic not authorised or unknown, not
    serialisable, HTTP 4xx): retrying will not help; it belongs in the publisher dead-letter store.

    ``reason``: what refused it, for programs: Kafka's error name when Kafka refused it (e.g.
    ``"MSG_SIZE_TOO_LARGE"``, ``"TOPIC_AUTHORIZATION_FAILED"``), else None.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class PublishUnavailableError(PublishError):
    """Delivery failed and the publisher dead letter could not be written either.

    The caller's transaction has been rolled back, so nothing of the business write is kept;
    ask the client to retry later (HTTP 503: see :mod:`kafkaguard.interfaces.http`).
    """

    def __init__(self, message: str, *, event_id: str, cause: str) -> None:
        super().__init__(message)
        self.event_id = event_id
        self.cause = cause


class ConsumerError(KafkaguardError):
    """The consumer could not read, apply or commit a message."""


class StoreUnavailableError(ConsumerError):
    """PostgreSQL (inbox and dead-letter store) is unreachable; the consumer pauses and retries."""


class UnknownEventTypeError(ConsumerError):
    """No handler is registered for the event's type; register one or set ``ignore_unknown``."""


class IdConflictError(ConsumerError):
    """An ``event_id`` the inbox already holds arrived with different content: two events claim one
    id (a producer bug or a forged message). It is not skipped as a duplicate: it is counted, logged
    with both positions and, by default (``ConsumerSettings.dead_letter_id_conflicts``), dead-lettered."""


class PayloadValidationError(ConsumerError):
    """The payload of an event does not validate against its typed handler's model
    (``@registry.handler(type, model=M)``). Permanent: the event is dead-lettered at once with
    reason ``invalid_payload`` and its raw bytes; it is never retried in process."""


class DeadLetterNotFoundError(ConsumerError):
    """A restore named a listener dead letter that does not exist; list them with the operator CLI."""
