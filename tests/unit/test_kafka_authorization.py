"""ACL refusals: a producer's is a permanent rejection named ``*_authorization_failed`` (the relay
dead-letters the row and holds its key); a consumer's stops the worker with one line naming group,
topic and principal, before anything is applied or committed."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.errors import AuthenticationError, ConsumerError, EventRejectedError
from kafkaguard.transports.kafka_errors import (
    AUTHORIZATION_REASONS,
    principal_hint,
    read_refusal,
    rejection_reason,
    translate_kafka_error,
)
from kafkaguard.transports.kafka_logging import KafkaClientLog, security_of


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "topic_authorization_failed"),
        (KafkaError.CLUSTER_AUTHORIZATION_FAILED, "cluster_authorization_failed"),
        (KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "transactional_id_authorization_failed"),
    ],
)
def test_a_producer_acl_refusal_is_a_named_rejection(code: int, reason: str) -> None:
    error = translate_kafka_error(KafkaError(code), "outbox.event.order")
    assert isinstance(error, EventRejectedError)
    assert error.reason == reason == rejection_reason(KafkaError(code)) == AUTHORIZATION_REASONS[code]
    assert str(error).startswith(f"{reason}: ")  # the dead letter's message leads with the reason
    assert "outbox.event.order" in str(error) and "\n" not in str(error)


def test_other_rejections_keep_librdkafka_names() -> None:
    error = translate_kafka_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), "t")
    assert isinstance(error, EventRejectedError) and error.reason == "MSG_SIZE_TOO_LARGE"


@pytest.mark.parametrize(
    ("config", "who"),
    [
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "orders",
          "sasl.password": "pw-never-shown"}, "User:orders over SASL_SSL/SCRAM-SHA-512"),
        ({"security.protocol": "SSL", "ssl.certificate.location": "/certs/orders.pem", "ssl.key.password": "kp"},
         "the subject of /certs/orders.pem over SSL"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.client.id": "cid",
          "sasl.oauthbearer.client.secret": "cs"}, "the OAUTHBEARER client cid over SASL_SSL/OAUTHBEARER"),
        ({}, "User:ANONYMOUS over PLAINTEXT"),
    ],
)  # fmt: skip
def test_principal_hint_never_shows_a_secret(config: dict[str, Any], who: str) -> None:
    assert principal_hint(config) == who


def test_read_refusal_lines() -> None:
    topic = read_refusal(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), group="g", topics=["orders"], principal="User:x over SSL"
    )
    assert topic == (
        "the Kafka consumer may not read topic 'orders' (group 'g') as User:x over SSL "
        "(TOPIC_AUTHORIZATION_FAILED); grant READ on the topic and on the group; nothing was committed"
    )
    group = read_refusal(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED), group="g", topics=["o"], principal="p")
    assert group.startswith("the Kafka consumer may not use consumer group 'g' as p (GROUP_AUTHORIZATION_FAILED)")


class _Message:
    def __init__(self, error: KafkaError, topic: str | None) -> None:
        self._error, self._topic = error, topic

    def error(self) -> KafkaError:
        return self._error

    def topic(self) -> str | None:
        return self._topic


class _Consumer:
    """confluent-kafka's Consumer as far as KafkaSource uses it here; records commits."""

    def __init__(self, config: dict[str, Any], answer: list[Any]) -> None:
        self.config, self.answer, self.commits = config, answer, 0

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        out, self.answer[:] = list(self.answer), []
        return out

    def commit(self, *args: Any, **kwargs: Any) -> None:
        self.commits += 1
        raise __import__("confluent_kafka").KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED))


@pytest.mark.parametrize(
    ("code", "topic", "expected"),
    [
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, "orders", "may not read topic 'orders' (group 'billing')"),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, None, "may not use consumer group 'billing'"),
    ],
)
def test_a_consumer_refused_by_the_acls_stops_with_one_line(
    monkeypatch: pytest.MonkeyPatch, code: int, topic: str | None, expected: str
) -> None:
    made: list[_Consumer] = []
    answer: list[Any] = [_Message(KafkaError(code), topic)]
    monkeypatch.setattr(
        "kafkaguard.consumer.kafka_source.Consumer", lambda config: made.append(_Consumer(config, answer)) or made[-1]
    )
    overrides = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "billing",
                 "sasl.password": "pw-never-shown"}  # fmt: skip
    source = KafkaSource("b:9093", "billing", ["orders"], overrides=overrides)
    with pytest.raises(ConsumerError) as raised:
        source.poll(10, 0.01)
    text = str(raised.value)
    assert expected in text and "User:billing over SASL_SSL/SCRAM-SHA-512" in text
    assert "\n" not in text and "pw-never-shown" not in text
    assert made[0].commits == 0
    with pytest.raises(ConsumerError, match="may not use consumer group 'billing'"):
        source.commit({("orders", 0): 5})


def test_a_refused_login_names_the_listener_protocol_and_mechanism() -> None:
    config = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.password": "pw-x"}
    log = KafkaClientLog("broker:9093", "relay", security=security_of(config))
    log.error(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: Authentication failed"))
    with pytest.raises(AuthenticationError) as raised:
        log.raise_if_refused()
    text = str(raised.value)
    assert text.startswith("Kafka at broker:9093 refused the credentials (")
    assert "on its SASL_SSL/SCRAM-SHA-512 listener" in text and "pw-x" not in text and "\n" not in text


def test_an_untrusted_certificate_is_fatal_at_start() -> None:
    log = KafkaClientLog("broker:9093", "relay", security="SSL")
    log.error(KafkaError(KafkaError._SSL, "SSL handshake failed: certificate verify failed"))
    with pytest.raises(AuthenticationError, match="on its SSL listener"):
        log.raise_if_refused()


def test_the_relay_dead_letters_an_acl_refused_row_holds_its_key_and_lets_other_keys_flow() -> None:
    from kafkaguard.testing import MemoryProducer
    from tests.unit.test_relay_delivery import A, R, finish, outcomes, plan_of, row, seqs, start, stored

    producer = MemoryProducer()
    producer.reject(where=seqs(1), reason="topic_authorization_failed")
    sent = finish(start([row(1, "K"), row(2, "K"), row(3, "J")], producer), producer)
    assert outcomes(sent) == {1: (R, True), 2: (A, False), 3: (A, False)}
    assert isinstance(sent[0].error, EventRejectedError) and sent[0].error.reason == "topic_authorization_failed"
    assert plan_of(sent) == ([3], [1], [2])  # 3 done, 1 dead-lettered, K's 2 held behind it
    assert stored(producer) == [2, 3]


@pytest.mark.parametrize(
    "text",
    [
        "SSL handshake failed: Disconnected: connection reset by peer: connecting to a PLAINTEXT broker listener?",
        "Disconnected: SSL connection closed by peer (after 0ms in state SSL_HANDSHAKE)",
    ],
)
def test_a_connection_dropped_during_the_tls_handshake_is_an_outage_not_a_refusal(text: str) -> None:
    """A network cut or a broker restart mid-handshake must not stop a worker (found by the secured
    chaos suite's network-cut run, where it stopped the relay and the consumer for good)."""
    log = KafkaClientLog("broker:9093", "relay", security="SASL_SSL/SCRAM-SHA-512")
    log.error(KafkaError(KafkaError._SSL, text))
    log.raise_if_refused()  # nothing raised
    assert log.auth_failure is None


def test_a_client_certificate_the_broker_rejects_after_the_tls13_handshake_is_a_refusal() -> None:
    """As a TLS 1.3 broker answers a certificate from another CA (seen on the secured dev stack)."""
    log = KafkaClientLog("broker:9093", "relay", security="SSL")
    text = (
        "ssl://127.0.0.1:47649/bootstrap: Receive failed: error:0A000416:SSL routines::ssl/tls alert "
        "certificate unknown: SSL alert number 46 (after 4ms in state APIVERSION_QUERY)"
    )
    log.error(KafkaError(KafkaError._TRANSPORT, text))
    with pytest.raises(AuthenticationError, match="on its SSL listener"):
        log.raise_if_refused()
