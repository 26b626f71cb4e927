"""Every Kafka client kafkaguard builds from settings gets kafka_security's keys (raw overrides still win).

confluent-kafka's constructors are replaced by a recorder at the adapter modules' import names, so
the test sees the exact dict each client would get; nothing connects.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kafkaguard.settings import KafkaguardSettings

SECURITY = {"protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512", "username": "relay", "password": "pw-1"}
EXPECTED = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "relay",
    "sasl.password": "pw-1",
}


def token_callback(config: str) -> tuple[str, float]:
    return "token", 0.0


class Recorded:
    """Stands for a confluent-kafka client: keeps its config, answers what the constructors' callers ask."""

    made: list[tuple[str, dict[str, Any]]]

    def __init__(self, config: dict[str, Any]) -> None:
        self.made.append((type(self).__name__, dict(config)))

    def poll(self, timeout: float = 0.0) -> int:
        # Blocks like the real client's poll: a poll thread of the client's owner (DeliveryProducer's)
        # must not spin. An instant return made that thread burn a core for the rest of the test
        # session (the unit suite took 3 to 4 minutes instead of 40 s, and a 1 s budget test failed).
        threading.Event().wait(min(timeout, 0.5) if timeout and timeout > 0 else 0.0)
        return 0

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: {}


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    record: list[tuple[str, dict[str, Any]]] = []
    classes = {n: type(n, (Recorded,), {"made": record}) for n in ("Producer", "Consumer", "AdminClient")}
    for module, name in [
        ("kafkaguard.transports.kafka_delivery", "Producer"),
        ("kafkaguard.transports.kafka_topics", "AdminClient"),
        ("kafkaguard.transports.kafka_admin", "AdminClient"),
        ("kafkaguard.relay.limits", "AdminClient"),
        ("kafkaguard.consumer.kafka_source", "Consumer"),
        ("kafkaguard.consumer.transactional", "Consumer"),
        ("kafkaguard.consumer.transactional", "Producer"),
    ]:
        monkeypatch.setattr(f"{module}.{name}", classes[name])
    return record


def _has_security(config: dict[str, Any]) -> bool:
    return all(config.get(k) == v for k, v in EXPECTED.items())


@pytest.fixture
def settings() -> KafkaguardSettings:
    return KafkaguardSettings(
        kafka_security=SECURITY,
        producer={"linger.ms": 7},
        consumer_client={"fetch.wait.max.ms": 11},
        database_url="postgresql+psycopg://u@127.0.0.1:1/x",
        consumer={"topics": ["t"], "group_id": "g", "dlq_topic": True},
    )


def test_delivery_producer_and_topic_registry(made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.transports.kafka_delivery import DeliveryProducer
    from kafkaguard.transports.kafka_topics import TopicRegistry

    DeliveryProducer.from_settings(settings, message_timeout=5)
    TopicRegistry.from_settings(settings)
    (kind_p, producer), (kind_a, admin) = made
    assert (kind_p, kind_a) == ("Producer", "AdminClient")
    assert _has_security(producer) and producer["linger.ms"] == 7
    assert _has_security(admin) and "linger.ms" not in admin  # only TLS/SASL keys reach the admin client


def test_relay(monkeypatch: pytest.MonkeyPatch, made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.relay.worker import Relay

    seen: dict[str, Any] = {}
    monkeypatch.setattr(Relay, "for_database", classmethod(lambda cls, **kw: seen.update(kw)))
    Relay.from_settings(settings)
    assert _has_security(seen["producer_overrides"]) and seen["producer_overrides"]["linger.ms"] == 7
    assert [k for k, c in made if k == "AdminClient" and _has_security(c)]  # its topic registry


def test_relay_limits_and_admin_helpers(made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.relay.limits import TopicLimits
    from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics

    TopicLimits(settings.bootstrap_servers, settings.kafka_producer_overrides())
    ensure_topics(settings.bootstrap_servers, [], overrides=settings.kafka_producer_overrides())
    delete_topics(settings.bootstrap_servers, ["x"], overrides=settings.kafka_producer_overrides())
    assert len(made) == 3 and all(k == "AdminClient" and _has_security(c) for k, c in made)


def test_consumer_worker_and_dlq_copier(made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.consumer.registry import HandlerRegistry
    from kafkaguard.consumer.runner import build_worker
    from kafkaguard.testing import MemoryConsumerStore

    build_worker(settings, HandlerRegistry(), store=MemoryConsumerStore())
    kinds = {k: c for k, c in made}
    assert _has_security(kinds["Consumer"]) and kinds["Consumer"]["fetch.wait.max.ms"] == 11
    assert _has_security(kinds["Producer"]) and kinds["Producer"]["linger.ms"] == 7  # the DLQ copier's


def test_publisher_restore_job(made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.restore.publisher_job import PublisherRestoreJob

    PublisherRestoreJob.from_settings(settings)
    assert {k for k, c in made if _has_security(c)} == {"Producer", "AdminClient"}


def test_transactional_forwarder(made: list[Any], settings: KafkaguardSettings) -> None:
    from kafkaguard.consumer.transactional import TransactionalForwarder

    TransactionalForwarder(
        settings.bootstrap_servers,
        "g",
        ["t"],
        "tx-1",
        lambda record: [],
        consumer_overrides=settings.kafka_consumer_overrides(),
        producer_overrides=settings.kafka_producer_overrides(),
    )
    assert {k for k, c in made if _has_security(c)} == {"Producer", "Consumer"}


def test_startup_probe(monkeypatch: pytest.MonkeyPatch, settings: KafkaguardSettings) -> None:
    from kafkaguard.transports import kafka_probe

    seen: list[dict[str, Any]] = []

    class Admin:
        def __init__(self, config: dict[str, Any]) -> None:
            seen.append(config)

        def list_topics(self, timeout: float) -> Any:
            return type("Metadata", (), {"brokers": {1: None}})()

        def poll(self, timeout: float) -> None:
            return None

    monkeypatch.setattr(kafka_probe, "AdminClient", Admin)
    brokers = kafka_probe.wait_for_kafka(
        settings.bootstrap_servers, settings.kafka_producer_overrides(), stop=threading.Event()
    )
    assert brokers == 1
    assert _has_security(seen[0]) and "linger.ms" not in seen[0]


def test_oauth_callback_reaches_admin_clients(made: list[Any]) -> None:
    from kafkaguard.transports.kafka_topics import TopicRegistry

    settings = KafkaguardSettings(
        kafka_security={
            "protocol": "SASL_SSL",
            "sasl_mechanism": "OAUTHBEARER",
            "oauth_token_callback": f"{__name__}:token_callback",
        }
    )
    TopicRegistry.from_settings(settings)
    assert callable(made[0][1]["oauth_cb"])
