"""``PublisherRestoreJob`` over ``MemoryPublisherDeadLetters`` and ``MemoryProducer``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaUnavailableError
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import PublisherStrategy, RestoreSettings
from kafkaguard.testing import MemoryConsumerStore, MemoryProducer, MemoryPublisherDeadLetters


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _store(*keys: str, clock: Clock) -> tuple[MemoryPublisherDeadLetters, list[Event]]:
    store = MemoryPublisherDeadLetters(clock=clock)
    events = [Event(type="order.created", key=k, payload={"n": n}) for n, k in enumerate(keys)]
    for e in events:
        store.add(None, e, topic="orders", source=PublishSource.DIRECT, error=KafkaUnavailableError("down"))
    return store, events


def test_due_records_are_republished_in_key_order_and_marked_restored() -> None:
    clock = Clock()
    store, _ = _store("a", "b", "a", clock=clock)
    producer = MemoryProducer()
    report = PublisherRestoreJob(store, RestoreSettings(), producer=producer, clock=clock).run_once()
    assert (report.restored, report.retried, report.failed) == (3, 0, 0)
    assert [m.key for m in producer.messages()] == [b"a", b"a", b"b"]  # each key's records in id order
    assert {r["status"] for r in store.records} == {"restored"}
    assert {r["restored_by"] for r in store.records} == {"republish"}
    assert store.open_keys() == set()


def test_a_failed_attempt_waits_for_its_backoff_and_holds_its_key() -> None:
    clock = Clock()
    store, _ = _store("a", "a", "b", clock=clock)
    producer = MemoryProducer()
    producer.time_out(where=lambda m: m.key == b"a")  # still down for key a
    policy = RetryPolicy(max_attempts=5, backoff=Fixed(seconds=60))
    job = PublisherRestoreJob(store, RestoreSettings(policy=policy), producer=producer, clock=clock)
    report = job.run_once()
    assert (report.restored, report.retried) == (1, 1)
    head = store.records[0]
    assert (head["status"], head["attempts"]) == ("pending", 2)  # stored after one try, restored once
    assert head["next_attempt_at"] == clock.now + timedelta(seconds=60)
    assert store.records[1]["attempts"] == 1  # behind its head: not tried
    assert head["last_error_class"] == "kafkaguard.errors.DeliveryTimeoutError"
    assert job.run_once().retried == 0  # not due yet
    clock.now += timedelta(seconds=61)
    producer.clear_faults()
    assert job.run_once().restored == 2
    assert [m.key for m in producer.messages()] == [b"b", b"a", b"a"]


def test_exhausted_attempts_park_the_record_as_failed() -> None:
    clock = Clock()
    store, _ = _store("a", clock=clock)
    producer = MemoryProducer()
    producer.reject(reason="TOPIC_AUTHORIZATION_FAILED")
    policy = RetryPolicy(max_attempts=3, backoff=Fixed(seconds=0))
    job = PublisherRestoreJob(store, RestoreSettings(policy=policy), producer=producer, clock=clock)
    outcomes = [job.run_once() for _ in range(2)]
    assert [(o.retried, o.failed) for o in outcomes] == [(1, 0), (0, 1)]
    record = store.records[0]
    assert (record["status"], record["attempts"]) == ("failed", 3)
    assert [h["attempts"] for h in record["history"]] == [1, 2, 3]
    assert record["last_error_class"] == "kafkaguard.errors.EventRejectedError"
    assert job.run_once().failed == 0 and store.open_keys() == {"a"}  # parked for an operator


def test_handoff_goes_through_the_hand_off_port_in_key_order() -> None:
    clock = Clock()
    store, events = _store("a", "b", "a", clock=clock)
    handed: list[tuple[int, str]] = []
    settings = RestoreSettings(publisher_strategy=PublisherStrategy.HANDOFF, handoff_group="activity")
    job = PublisherRestoreJob(store, settings, hand_off=lambda _h, row, event: handed.append((row["id"], event.key)))
    assert job.run_once().restored == 3
    assert handed == [(1, "a"), (3, "a"), (2, "b")]
    assert {r["restored_by"] for r in store.records} == {"handoff"}
    assert [e.event_id for e in events] == [r["event_id"] for r in store.records]


def test_the_default_handoff_writes_through_the_listener_store_once_per_record() -> None:
    clock = Clock()
    store, events = _store("a", "b", clock=clock)
    listener = MemoryConsumerStore(clock=clock)
    settings = RestoreSettings(publisher_strategy=PublisherStrategy.HANDOFF, handoff_group="activity")
    job = PublisherRestoreJob(store, settings, listener_store=listener, clock=clock)
    assert job.run_once().restored == 2
    rows = listener.dead_letters_of("activity")
    assert [(r["key"], r["event_id"], r["partition"], r["offset"]) for r in rows] == [
        ("a", events[0].event_id, -1, -1),
        ("b", events[1].event_id, -1, -2),
    ]
    assert {(r["status"], r["reason"]) for r in rows} == {("pending", "handoff")}
    assert rows[0]["raw_value"] == events[0].payload_bytes()
    assert rows[0]["history"][0]["publisher_dead_letter"] == 1
    # A repeated handoff (a crash between the two writes) stores nothing new: the position is unique.
    job.hand_off(None, store.records[0], events[0])  # type: ignore[arg-type]
    assert len(listener.dead_letters_of("activity")) == 2
