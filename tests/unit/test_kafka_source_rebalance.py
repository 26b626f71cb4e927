"""KafkaSource's rebalance callbacks under both group protocols, and the settings the consumer protocol refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError
from confluent_kafka import TopicPartition as KafkaTP

from kafkaguard.consumer.kafka_source import KafkaSource, protocol_config
from kafkaguard.consumer.settings import ConsumerSettings, GroupProtocol
from kafkaguard.consumer.source import TopicPartition
from kafkaguard.errors import ConfigurationError, ConsumerError

NOWHERE = "127.0.0.1:9"  # nothing listens: the callbacks are driven by hand, never by a broker


class FakeConsumer:
    """Records what the callbacks ask of the client."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []

    def _log(self, name: str, partitions: list[KafkaTP]) -> None:
        self.calls.append((name, [(p.topic, p.partition) for p in partitions]))

    def assign(self, partitions: list[KafkaTP]) -> None:
        self._log("assign", partitions)

    def unassign(self) -> None:
        self.calls.append(("unassign", []))

    def incremental_assign(self, partitions: list[KafkaTP]) -> None:
        self._log("incremental_assign", partitions)

    def incremental_unassign(self, partitions: list[KafkaTP]) -> None:
        self._log("incremental_unassign", partitions)

    def pause(self, partitions: list[KafkaTP]) -> None:
        self._log("pause", partitions)


def tps(*numbers: int) -> list[KafkaTP]:
    return [KafkaTP("t", n) for n in numbers]


@pytest.fixture
def source_of() -> Iterator[dict[GroupProtocol, KafkaSource]]:
    made = {p: KafkaSource(NOWHERE, "g", ["t"], group_protocol=p) for p in GroupProtocol}
    yield made
    for s in made.values():
        s.close()


def test_consumer_protocol_assigns_and_revokes_incrementally(source_of: dict[GroupProtocol, KafkaSource]) -> None:
    source, fake = source_of[GroupProtocol.CONSUMER], FakeConsumer()
    revoked: list[list[TopicPartition]] = []
    source.set_on_revoke(revoked.append)
    source._assigned(fake, tps(0, 1, 2))  # type: ignore[arg-type]
    source._assigned(fake, tps(3))  # type: ignore[arg-type]
    assert sorted(source.owned()) == [("t", 0), ("t", 1), ("t", 2), ("t", 3)]
    source._revoked(fake, tps(1, 3))  # type: ignore[arg-type]
    assert revoked == [[("t", 1), ("t", 3)]], "the hook gets exactly the revoked partitions"
    assert sorted(source.owned()) == [("t", 0), ("t", 2)]
    source._lost(fake, tps(0))  # type: ignore[arg-type]
    assert source.owned() == (("t", 2),)
    assert [name for name, _ in fake.calls] == [
        "incremental_assign", "incremental_assign", "incremental_unassign", "incremental_unassign",
    ]  # fmt: skip
    assert fake.calls[2] == ("incremental_unassign", [("t", 1), ("t", 3)])


def test_classic_protocol_stays_eager(source_of: dict[GroupProtocol, KafkaSource]) -> None:
    source, fake = source_of[GroupProtocol.CLASSIC], FakeConsumer()
    revoked: list[list[TopicPartition]] = []
    source.set_on_revoke(revoked.append)
    source._assigned(fake, tps(0, 1))  # type: ignore[arg-type]
    source._revoked(fake, tps(0, 1))  # type: ignore[arg-type]
    source._assigned(fake, tps(1))  # type: ignore[arg-type]
    assert source.owned() == (("t", 1),)
    assert revoked == [[("t", 0), ("t", 1)]]
    assert [name for name, _ in fake.calls] == ["assign", "unassign", "assign"]


@pytest.mark.parametrize("protocol", list(GroupProtocol))
def test_partitions_assigned_while_paused_are_paused(
    source_of: dict[GroupProtocol, KafkaSource], protocol: GroupProtocol
) -> None:
    source, fake = source_of[protocol], FakeConsumer()
    source._paused = True  # as pause() leaves it; the real client's assignment is empty here
    source._assigned(fake, tps(4))  # type: ignore[arg-type]
    assert ("pause", [("t", 4)]) in fake.calls


@pytest.mark.parametrize("key", ["session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"])
def test_consumer_protocol_refuses_classic_only_overrides(key: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        protocol_config(GroupProtocol.CONSUMER, {key: "1"})
    assert protocol_config(GroupProtocol.CLASSIC, {key: "1"}) == {}


def test_a_group_protocol_override_must_agree_with_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="group.protocol=consumer"):
        protocol_config(GroupProtocol.CLASSIC, {"group.protocol": "consumer"})
    assert protocol_config(GroupProtocol.CONSUMER, {"group.protocol": "consumer"}) == {"group.protocol": "consumer"}


def test_static_membership_is_accepted_under_both_protocols() -> None:
    for protocol in GroupProtocol:
        KafkaSource(NOWHERE, "g", ["t"], instance_id="pod-0", group_protocol=protocol).close()


def test_the_setting_defaults_to_classic_and_is_strict() -> None:
    assert ConsumerSettings().group_protocol is GroupProtocol.CLASSIC
    assert ConsumerSettings(group_protocol="consumer").group_protocol is GroupProtocol.CONSUMER  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group_protocol"):
        ConsumerSettings(group_protocol="cooperative")  # type: ignore[arg-type]


def test_under_the_consumer_protocol_the_wait_names_the_brokers_session_timeout(
    source_of: dict[GroupProtocol, KafkaSource],
) -> None:
    assert source_of[GroupProtocol.CONSUMER]._wait.session_setting.startswith("group.consumer.session.timeout.ms")
    assert source_of[GroupProtocol.CLASSIC]._wait.session_setting == "session.timeout.ms"


class FatalMessage:
    def error(self) -> KafkaError:
        # As librdkafka 2.16 hands it over in a message: code _FATAL, the fatal flag not set.
        return KafkaError(KafkaError._FATAL, "instance ID is still used")


class FatalClient:
    """What a consumer whose client hit a fatal error returns from ``consume``."""

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FatalMessage]:
        return [FatalMessage()]


def test_a_fatal_client_error_stops_the_worker_instead_of_polling_a_dead_client() -> None:
    source = KafkaSource(NOWHERE, "g", ["t"], group_protocol=GroupProtocol.CONSUMER)
    source.close()
    source._consumer = FatalClient()  # type: ignore[assignment]
    source._ever_assigned = True  # past the start-up login check
    with pytest.raises(ConsumerError, match="stopped: .*instance ID is still used"):
        source.poll(10, 0.01)
