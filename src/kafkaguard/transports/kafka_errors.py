"""Translate librdkafka errors into kafkaguard's tree: transient (wait and retry) or rejected (dead-letter).

The split is the relay's and the publishers' one decision about a failed delivery: a transient
error (:class:`~kafkaguard.errors.KafkaUnavailableError`) never sends an event to a dead-letter
store, because an outage ends; a rejection (:class:`~kafkaguard.errors.EventRejectedError`) does,
because the same bytes to the same topic will be refused again.
"""

from __future__ import annotations

from confluent_kafka import KafkaError

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError, KafkaUnavailableError, PublishError

TIMEOUT_CODES = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT})

# Refusals of this record or this topic that waiting does not cure. Unknown-topic errors are not
# here: the topic registry creates topics first, so an unknown topic at delivery is a broker that
# is still loading metadata (transient); a topic that cannot be created is rejected by the registry.
REJECTED_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
    }
)


def translate_kafka_error(error: KafkaError, topic: str) -> PublishError:
    """Convert a librdkafka error about ``topic`` into a transient or a rejected kafkaguard error."""
    code = error.code()
    text = f"{error.name()}: {error.str()}"
    if code in TIMEOUT_CODES:
        return DeliveryTimeoutError(
            f"the broker did not acknowledge a message to {topic!r} in time ({text}); "
            "Kafka is down or has too few in-sync replicas"
        )
    if code in REJECTED_CODES:
        return EventRejectedError(f"Kafka refuses the record for {topic!r} ({text}); retrying will not help")
    return KafkaUnavailableError(f"producing to {topic!r} failed for now ({text}); it will be retried")


def is_rejection(exc: BaseException) -> bool:
    """True if ``exc`` says the event itself is refused for good (dead-letter it, do not wait)."""
    return isinstance(exc, EventRejectedError)
