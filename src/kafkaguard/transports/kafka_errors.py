"""Translate librdkafka errors into kafkaguard's tree: transient (wait and retry) or rejected (dead-letter).

The split is the relay's and the publishers' one decision about a failed delivery: a transient
error (:class:`~kafkaguard.errors.KafkaUnavailableError`) never sends an event to a dead-letter
store, because an outage ends; a rejection (:class:`~kafkaguard.errors.EventRejectedError`) does,
because the same bytes to the same topic will be refused again. :data:`REJECTED_CODES` is the one
table of rejections, used for delivery reports, ``produce()`` failures and the topic registry's
metadata and create-topic answers alike; a rejection's ``reason`` is the librdkafka error name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "the credentials may not use the transactional id",
    KafkaError.TOPIC_EXCEPTION: "the topic name is invalid",
    KafkaError.POLICY_VIOLATION: "the broker's create-topic policy refuses the topic",
    KafkaError.INVALID_REPLICATION_FACTOR: "the topic cannot be created with the configured replication",
    KafkaError.INVALID_PARTITIONS: "the topic cannot be created with the configured partitions",
}


# An ACL refusal is the principal's, not the record's: its dead letter's reason is named for it
# (lower case, like the relay's other reasons), so "which events did the ACLs stop" is one query on
# the first word of last_error_message, and a restore after the ACL is fixed republishes them.
AUTHORIZATION_REASONS: Mapping[int, str] = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic_authorization_failed",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster_authorization_failed",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional_id_authorization_failed",
}


def rejection_reason(error: KafkaError) -> str:
    """The dead-letter reason of a rejection: :data:`AUTHORIZATION_REASONS`' name, else librdkafka's error name."""
    return AUTHORIZATION_REASONS.get(error.code(), error.name())


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
    if code in AUTHORIZATION_REASONS:
        reason = AUTHORIZATION_REASONS[code]
        return EventRejectedError(
            f"{reason}: Kafka refuses the record for {topic!r} ({text}): {REJECTED_CODES[code]}; "
            "grant the producer's principal the ACL (WRITE on the topic, IDEMPOTENT_WRITE on the cluster), then "
            "restore its dead letters",
            reason=reason,
        )
    if code in REJECTED_CODES:
        return EventRejectedError(
            f"Kafka refuses the record for {topic!r} ({text}); retrying will not help", reason=error.name()
        )
    return KafkaUnavailableError(f"producing to {topic!r} failed for now ({text}); it will be retried")


# A consumer refused by the ACLs: its topic (READ) or its group (READ on the group). The worker stops
# (kafkaguard consume exits non-zero) instead of polling on: waiting does not grant an ACL.
READ_AUTHORIZATION_CODES = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED})


def principal_hint(config: Mapping[str, Any]) -> str:
    """Who the client authenticates as, from its settings, for a refusal's line (never a secret):
    the SASL user, the client certificate's file, an OAUTHBEARER client id, or ANONYMOUS."""
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    mechanism = config.get("sasl.mechanism")
    via = protocol if not mechanism or not protocol.startswith("SASL") else f"{protocol}/{mechanism}"
    if protocol.startswith("SASL") and config.get("sasl.username"):
        who = f"User:{config['sasl.username']}"
    elif protocol.startswith("SASL") and config.get("sasl.oauthbearer.client.id"):
        who = f"the OAUTHBEARER client {config['sasl.oauthbearer.client.id']}"
    elif protocol.startswith("SASL") and mechanism == "OAUTHBEARER":
        who = "the token callback's principal"
    elif config.get("ssl.certificate.location"):
        who = f"the subject of {config['ssl.certificate.location']}"
    else:
        who = "User:ANONYMOUS"
    return f"{who} over {via}"


def read_refusal(error: KafkaError, *, group: str, topics: Sequence[str], principal: str) -> str:
    """One line for a consumer the ACLs refuse: what, the group and topics, the principal, what to grant."""
    if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
        what = f"may not use consumer group {group!r}"
        grant = f"READ on group {group!r}"
    else:
        what = f"may not read topic {', '.join(repr(t) for t in topics)} (group {group!r})"
        grant = "READ on the topic and on the group"
    return f"the Kafka consumer {what} as {principal} ({error.name()}); grant {grant}; nothing was committed"
