"""Translate librdkafka errors into kafkaguard's tree: transient (wait and retry) or rejected (dead-letter).

The split is the relay's and the publishers' one decision about a failed delivery: a transient
error (:class:`~kafkaguard.errors.KafkaUnavailableError`) never sends an event to a dead-letter
store, because an outage ends; a rejection (:class:`~kafkaguard.errors.EventRejectedError`) does,
because the same bytes to the same topic will be refused again. :data:`REJECTED_CODES` is the one
table of rejections, used for delivery reports, ``produce()`` failures and the topic registry's
metadata and create-topic answers alike; a rejection's ``reason`` is the librdkafka error name.
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka import KafkaError

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError, KafkaUnavailableError, PublishError

TIMEOUT_CODES = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError.REQUEST_TIMED_OUT})

# Refusals of this record or this topic that waiting does not cure, each with why. Unknown-topic
# errors are not here: the topic registry creates topics first, so an unknown topic at delivery is a
# broker that is still loading metadata (transient); a topic that cannot be created is rejected by
# the registry (creation turned off, or one of the topic codes below).
REJECTED_CODES: Mapping[int, str] = {
    KafkaError.MSG_SIZE_TOO_LARGE: "the record is above message.max.bytes (producer's or topic's)",
    KafkaError.RECORD_LIST_TOO_LARGE: "the batch holding the record is above the topic's limit",
    KafkaError.INVALID_RECORD: "the broker refuses the record's contents (e.g. compaction without a key)",
    KafkaError.INVALID_MSG: "the record failed the broker's checks",
    KafkaError._INVALID_ARG: "librdkafka refuses the record's arguments",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "the credentials may not write to the topic",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "the credentials may not create topics or use idempotence",
    KafkaError.TOPIC_EXCEPTION: "the topic name is invalid",
    KafkaError.POLICY_VIOLATION: "the broker's create-topic policy refuses the topic",
    KafkaError.INVALID_REPLICATION_FACTOR: "the topic cannot be created with the configured replication",
    KafkaError.INVALID_PARTITIONS: "the topic cannot be created with the configured partitions",
}


def rejects(error: KafkaError) -> bool:
    """True if ``error`` refuses the record or its topic for good (see :data:`REJECTED_CODES`)."""
    return error.code() in REJECTED_CODES


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
        return EventRejectedError(
            f"Kafka refuses the record for {topic!r} ({text}); retrying will not help", reason=error.name()
        )
    return KafkaUnavailableError(f"producing to {topic!r} failed for now ({text}); it will be retried")
