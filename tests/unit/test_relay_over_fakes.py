"""``Relay.run_round`` over ``MemoryOutbox`` and a fake producer: no PostgreSQL, no Kafka."""

from __future__ import annotations

import json

from kafkaguard.envelope import Event
from kafkaguard.errors import EventRejectedError, KafkaUnavailableError, PublishError
from kafkaguard.metrics.registry import Metrics
from kafkaguard.metrics.relay_hook import RelayMetrics
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.testing import MemoryOutbox
from tests.unit.relay_fakes import Failure, FakeProducer, NoTopics


def _relay(outbox: MemoryOutbox, producer: FakeProducer, **settings: object) -> Relay:
    relay = Relay(
        outbox=outbox,
        producer=producer,
        topics=NoTopics(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        settings=RelaySettings(**{"poll_interval": 0.1, **settings}),  # type: ignore[arg-type]
        name="unit-relay",
    )
    assert len(relay.take_shards()) == 64  # alone: it owns every shard
    return relay


def _events(*keys: str) -> list[Event]:
    return [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate(keys)]


def _ns(producer: FakeProducer, key: bytes) -> list[int]:
    return [json.loads(v or b"")["n"] for _t, k, v in producer.sent if k == key]


def _failing(key: bytes, error: PublishError, *, n: int | None = None) -> Failure:
    def fail(_topic: str, k: bytes | None, value: bytes | None) -> PublishError | None:
        if k == key and (n is None or json.loads(value or b"")["n"] == n):
            return error
        return None

    return fail


def test_a_round_publishes_every_row_in_key_order_and_empties_the_outbox() -> None:
    outbox, producer = MemoryOutbox(), FakeProducer()
    outbox.add(None, _events("a", "b", "a", "b", "a"))
    result = _relay(outbox, producer).run_round()
    assert (result.claimed, result.published, result.dead_lettered, result.transient_failures) == (5, 5, 0, 0)
    assert _ns(producer, b"a") == [0, 2, 4] and _ns(producer, b"b") == [1, 3]
    assert {t for t, _k, _v in producer.sent} == {"outbox.event.order"}
    assert outbox.backlog() == 0 and outbox.rows == []


def test_a_rejected_row_becomes_a_dead_letter_and_holds_its_key() -> None:
    outbox = MemoryOutbox()
    producer = FakeProducer(_failing(b"a", EventRejectedError("record too large"), n=0))
    outbox.add(None, _events("a", "b", "a"))
    relay = _relay(outbox, producer)
    result = relay.run_round()
    assert (result.published, result.dead_lettered) == (1, 1)
    assert _ns(producer, b"b") == [1]
    [letter] = outbox.dead_letters.records
    assert letter["key"] == "a" and letter["status"] == "pending" and letter["source"] == "outbox"
    assert letter["last_error_class"] == "kafkaguard.errors.EventRejectedError"
    assert letter["history"][0]["attempts"] == 1
    # The key's later row (produced in the same batch) is not removed: it waits behind the dead letter,
    # in this round and the next ones.
    assert [r["payload"]["n"] for r in outbox.rows] == [2]
    producer.fail = lambda _t, _k, _v: None
    assert relay.run_round().claimed == 0
    assert [r["payload"]["n"] for r in outbox.rows] == [2]


def test_without_key_blocking_the_later_row_of_a_rejected_key_flows() -> None:
    outbox = MemoryOutbox()
    producer = FakeProducer(_failing(b"a", EventRejectedError("topic refused"), n=0))
    outbox.add(None, _events("a", "a"))
    result = _relay(outbox, producer, block_key_on_dead_letter=False).run_round()
    assert (result.published, result.dead_lettered) == (1, 1)
    assert _ns(producer, b"a") == [1] and outbox.backlog() == 0


def test_a_transient_failure_keeps_the_row_and_its_key_for_the_next_round() -> None:
    outbox = MemoryOutbox()
    producer = FakeProducer(_failing(b"a", KafkaUnavailableError("broker down"), n=0))
    outbox.add(None, _events("a", "b", "a"))
    relay = _relay(outbox, producer)
    result = relay.run_round()
    assert result.transient_failures == 1 and result.dead_lettered == 0 and result.published == 1
    assert outbox.dead_letters.records == []
    # Both rows of the key stay (the later one was acknowledged, but must not overtake the failed one).
    assert sorted(r["payload"]["n"] for r in outbox.rows) == [0, 2]
    producer.fail = lambda _t, _k, _v: None  # Kafka is back
    assert relay.run_round().published == 2
    assert _ns(producer, b"a")[-2:] == [0, 2] and outbox.backlog() == 0


def test_a_row_rejected_inside_a_batch_is_sent_alone_before_it_counts_as_rejected() -> None:
    outbox = MemoryOutbox()
    producer = FakeProducer(fail_in_batch=_failing(b"a", EventRejectedError("MESSAGE_TOO_LARGE (the batch)"), n=0))
    outbox.add(None, _events("a", "b"))
    result = _relay(outbox, producer).run_round()
    assert (result.published, result.dead_lettered) == (2, 0)
    assert outbox.dead_letters.records == [] and outbox.backlog() == 0


def test_a_key_that_failed_in_one_batch_waits_in_the_next_pipelined_batch_too() -> None:
    outbox = MemoryOutbox()
    producer = FakeProducer(_failing(b"a", KafkaUnavailableError("partition leader away"), n=0))
    outbox.add(None, [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate("abab")])
    result = _relay(outbox, producer, batch_size=2).run_round()
    # Batch 2 was produced before batch 1's reports were in; its row of key "a" is kept behind a0.
    assert (result.claimed, result.published, result.transient_failures) == (4, 2, 1)
    assert _ns(producer, b"b") == [1, 3]
    assert sorted(r["payload"]["n"] for r in outbox.rows) == [0, 2]
    producer.fail = lambda _t, _k, _v: None
    assert _relay(outbox, producer, batch_size=2).run_round().published == 2
    assert _ns(producer, b"a")[-2:] == [0, 2] and outbox.backlog() == 0


def test_two_instances_split_the_shards_and_never_claim_the_same_key() -> None:
    first = MemoryOutbox()
    second = first.another_instance()
    p1, p2 = FakeProducer(), FakeProducer()
    r1 = Relay(outbox=first, producer=p1, topics=NoTopics(), for_aggregate=str, settings=RelaySettings())
    r2 = Relay(outbox=second, producer=p2, topics=NoTopics(), for_aggregate=str, settings=RelaySettings())
    first.connect()
    second.connect()  # both live: each takes its fair share of the 64 shards
    r1.take_shards()
    r2.take_shards()
    assert r1.held_shards.isdisjoint(r2.held_shards) and len(r1.held_shards) == len(r2.held_shards) == 32
    first.add(None, _events(*[f"k{i}" for i in range(40)]))
    r1.run_round()
    r2.run_round()
    assert len(p1.sent) + len(p2.sent) == 40
    assert set(p1.keys()).isdisjoint(p2.keys())


def test_the_metrics_hook_counts_what_a_round_settled() -> None:
    metrics = Metrics(parts=frozenset({"relay"}))
    outbox = MemoryOutbox()
    producer = FakeProducer(_failing(b"b", EventRejectedError("too large")))
    relay = Relay(
        outbox=outbox,
        producer=producer,
        topics=NoTopics(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        settings=RelaySettings(),
        hook=RelayMetrics(metrics),
    )
    relay.take_shards()
    outbox.add(None, _events("a", "a", "b"))
    relay.run_round()
    sample = metrics.registry.get_sample_value
    assert sample("kafkaguard_relay_published_total", {"topic": "outbox.event.order"}) == 2
    dead = sample("kafkaguard_publisher_dead_lettered_total", {"source": "outbox", "error_class": "EventRejectedError"})
    assert dead == 1
