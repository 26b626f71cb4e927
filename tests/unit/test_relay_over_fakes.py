"""``Relay.run_round`` over ``MemoryOutbox`` and ``MemoryProducer``: no PostgreSQL, no Kafka."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from kafkaguard.envelope import Event
from kafkaguard.metrics.registry import Metrics
from kafkaguard.metrics.relay_hook import RelayMetrics
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.testing import MemoryOutbox, MemoryProducer, StoredMessage
from kafkaguard.transports.ports import TopicsExist


def _relay(outbox: MemoryOutbox, producer: MemoryProducer, **settings: object) -> Relay:
    relay = Relay(
        outbox=outbox,
        producer=producer,
        topics=TopicsExist(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        settings=RelaySettings(**{"poll_interval": 0.1, **settings}),  # type: ignore[arg-type]
        name="unit-relay",
    )
    assert len(relay.take_shards()) == 64  # alone: it owns every shard
    return relay


def _events(*keys: str) -> list[Event]:
    return [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate(keys)]


def _ns(producer: MemoryProducer, key: bytes) -> list[int]:
    return [json.loads(m.value or b"")["n"] for m in producer.messages() if m.key == key]


def _of(key: bytes, n: int | None = None) -> Callable[[StoredMessage], bool]:
    """Matches the message of ``key`` (and payload number ``n``, if given)."""
    return lambda m: m.key == key and (n is None or json.loads(m.value or b"")["n"] == n)


def _rejecting(key: bytes, n: int | None = None, **fault: Any) -> MemoryProducer:
    producer = MemoryProducer()
    producer.reject(where=_of(key, n), **fault)
    return producer


def _timing_out(key: bytes, n: int | None = None) -> MemoryProducer:
    producer = MemoryProducer()
    producer.time_out(where=_of(key, n))
    return producer


def test_a_round_publishes_every_row_in_key_order_and_empties_the_outbox() -> None:
    outbox, producer = MemoryOutbox(), MemoryProducer()
    outbox.add(None, _events("a", "b", "a", "b", "a"))
    result = _relay(outbox, producer).run_round()
    assert (result.claimed, result.published, result.dead_lettered, result.transient_failures) == (5, 5, 0, 0)
    assert _ns(producer, b"a") == [0, 2, 4] and _ns(producer, b"b") == [1, 3]
    assert {m.topic for m in producer.messages()} == {"outbox.event.order"}
    assert outbox.backlog() == 0 and outbox.rows == []


def test_a_rejected_row_becomes_a_dead_letter_and_holds_its_key() -> None:
    outbox = MemoryOutbox()
    producer = _rejecting(b"a", 0)
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
    producer.clear_faults()
    assert relay.run_round().claimed == 0
    assert [r["payload"]["n"] for r in outbox.rows] == [2]


def test_without_key_blocking_the_later_row_of_a_rejected_key_flows() -> None:
    outbox = MemoryOutbox()
    producer = _rejecting(b"a", 0, reason="TOPIC_AUTHORIZATION_FAILED")
    outbox.add(None, _events("a", "a"))
    result = _relay(outbox, producer, block_key_on_dead_letter=False).run_round()
    assert (result.published, result.dead_lettered) == (1, 1)
    assert _ns(producer, b"a") == [1] and outbox.backlog() == 0


def test_a_transient_failure_keeps_the_row_and_its_key_for_the_next_round() -> None:
    outbox = MemoryOutbox()
    producer = _timing_out(b"a", 0)
    outbox.add(None, _events("a", "b", "a"))
    relay = _relay(outbox, producer)
    result = relay.run_round()
    assert result.transient_failures == 1 and result.dead_lettered == 0 and result.published == 1
    assert outbox.dead_letters.records == []
    # Both rows of the key stay (the later one was acknowledged, but must not overtake the failed one).
    assert sorted(r["payload"]["n"] for r in outbox.rows) == [0, 2]
    producer.clear_faults()  # Kafka is back
    assert relay.run_round().published == 2
    assert _ns(producer, b"a")[-2:] == [0, 2] and outbox.backlog() == 0


def test_a_row_rejected_inside_a_batch_is_sent_alone_before_it_counts_as_rejected() -> None:
    outbox = MemoryOutbox()
    producer = _rejecting(b"a", 0, reason="MESSAGE_TOO_LARGE", times=1)  # the batch, not the record
    outbox.add(None, _events("a", "b"))
    result = _relay(outbox, producer).run_round()
    assert (result.published, result.dead_lettered) == (2, 0)
    assert outbox.dead_letters.records == [] and outbox.backlog() == 0


def test_a_key_that_failed_in_one_batch_waits_in_the_next_pipelined_batch_too() -> None:
    outbox = MemoryOutbox()
    producer = _timing_out(b"a", 0)
    outbox.add(None, [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate("abab")])
    result = _relay(outbox, producer, batch_size=2).run_round()
    # Batch 2 was produced before batch 1's reports were in; its row of key "a" is kept behind a0.
    assert (result.claimed, result.published, result.transient_failures) == (4, 2, 1)
    assert _ns(producer, b"b") == [1, 3]
    assert sorted(r["payload"]["n"] for r in outbox.rows) == [0, 2]
    producer.clear_faults()
    assert _relay(outbox, producer, batch_size=2).run_round().published == 2
    assert _ns(producer, b"a")[-2:] == [0, 2] and outbox.backlog() == 0


def test_two_instances_split_the_shards_and_never_claim_the_same_key() -> None:
    first = MemoryOutbox()
    second = first.another_instance()
    p1, p2 = MemoryProducer(), MemoryProducer()
    r1 = Relay(outbox=first, producer=p1, topics=TopicsExist(), for_aggregate=str, settings=RelaySettings())
    r2 = Relay(outbox=second, producer=p2, topics=TopicsExist(), for_aggregate=str, settings=RelaySettings())
    first.connect()
    second.connect()  # both live: each takes its fair share of the 64 shards
    r1.take_shards()
    r2.take_shards()
    assert r1.held_shards.isdisjoint(r2.held_shards) and len(r1.held_shards) == len(r2.held_shards) == 32
    first.add(None, _events(*[f"k{i}" for i in range(40)]))
    r1.run_round()
    r2.run_round()
    assert len(p1.messages()) + len(p2.messages()) == 40
    assert {m.key for m in p1.messages()}.isdisjoint(m.key for m in p2.messages())


def test_the_metrics_hook_counts_what_a_round_settled() -> None:
    metrics = Metrics(parts=frozenset({"relay"}))
    outbox = MemoryOutbox()
    producer = _rejecting(b"b")
    relay = Relay(
        outbox=outbox,
        producer=producer,
        topics=TopicsExist(),
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
