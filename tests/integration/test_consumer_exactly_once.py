"""Exactly-once effect on the real Kafka and PostgreSQL: duplicates, kill -9, rebalances."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from kafkaguard.consumer.kafka_source import KafkaSource
from kafkaguard.consumer.settings import ConsumerSettings, GroupProtocol
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import rows, scalar, spawn_cli_consumer, start_worker, wait_until


def assert_exactly_once_in_order(db: TestDatabase, group: str, n: int) -> None:
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == n
    assert scalar(db.conninfo, "SELECT count(DISTINCT event_id) FROM effects") == n
    assert scalar(db.conninfo, "SELECT count(*) FROM kafka_inbox WHERE consumer_group = %(g)s", {"g": group}) == n
    # Per-key order: seq strictly increasing in application order (id) for every key.
    bad = scalar(
        db.conninfo,
        "SELECT count(*) FROM (SELECT seq - lag(seq) OVER (PARTITION BY key ORDER BY id) AS d FROM effects) x "
        "WHERE d <> 1",
    )
    assert bad == 0


@pytest.mark.parametrize("protocol", list(GroupProtocol))
def test_10000_events_5_percent_twice_applied_once(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase, protocol: GroupProtocol
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("ten-k", partitions=3)
    events = app.make_events(10_000, keys=200)
    twice = set(random.Random(4).sample(range(len(events)), 500))
    sent = app.produce(kafka_bootstrap, topic, events, twice=twice)
    assert sent == 10_500
    group = app.new_group()
    started = time.monotonic()
    settings = ConsumerSettings(group_id=group, topics=(topic,), group_protocol=protocol)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    try:
        wait_until(lambda: w.worker.stats["applied"] + w.worker.stats["duplicate"] >= sent, 150, "10,500 outcomes")
    finally:
        w.stop()
    elapsed = time.monotonic() - started
    rate = sent / elapsed
    print(f"\n10k ({protocol}): {sent} messages in {elapsed:.1f} s = {rate:.0f} msg/s; stats {dict(w.worker.stats)}")
    assert w.worker.stats["duplicate"] == 500
    assert w.worker.stats["applied"] == 10_000
    assert_exactly_once_in_order(db, group, 10_000)


CHUNKS_OF_20 = ("--batch-size", "20")


def test_kill_9_ten_times_still_exactly_once(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase, tmp_path: Path
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("kill", partitions=3)
    events = app.make_events(3000, keys=50)
    app.produce(kafka_bootstrap, topic, events)
    group = app.new_group()
    rng = random.Random(20240607)
    log = tmp_path / "consumer.log"
    effects = lambda: int(scalar(db.conninfo, "SELECT count(*) FROM effects"))  # noqa: E731
    kills = 0
    for _ in range(10):
        before = effects()
        # Chunks of 20 (chunk mode, as the default, in chunks small enough that ten kills land
        # mid-stream of 3,000 events; a kill inside a chunk's transaction rolls all of it back).
        proc = spawn_cli_consumer(kafka_bootstrap, db.server.url(), db.schema, group, topic, log, args=CHUNKS_OF_20)
        target = before + rng.randint(20, 150)
        wait_until(
            lambda p=proc, t=target: effects() >= t or p.poll() is not None, 60, "progress before the kill", 0.02
        )
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    assert kills == 10
    assert effects() < len(events), "the kills happened mid-stream"
    proc = spawn_cli_consumer(kafka_bootstrap, db.server.url(), db.schema, group, topic, log)
    try:
        wait_until(lambda: effects() >= len(events), 90, "all events after the kills")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_exactly_once_in_order(db, group, len(events))
    # Redelivered-but-applied messages were skipped by the inbox, not applied again.
    assert scalar(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == 0


@pytest.mark.parametrize("protocol", list(GroupProtocol))
def test_second_consumer_joins_and_leaves_keeps_order(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase, protocol: GroupProtocol
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("rebalance", partitions=6)
    events = app.make_events(4000, keys=60)
    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), group_protocol=protocol)
    effects = lambda: int(scalar(db.conninfo, "SELECT count(*) FROM effects"))  # noqa: E731
    first = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    app.produce(kafka_bootstrap, topic, events[:2000])
    try:
        wait_until(lambda: effects() >= 300, 60, "first consumer progressing")
        second = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
        # The rest is produced once the second owns partitions: chunk mode (the default) may have
        # applied every event already by the time the group has rebalanced.
        source = second.worker.source
        assert isinstance(source, KafkaSource)
        wait_until(lambda: len(source.owned()) > 0, 60, "the second consumer assigned partitions")
        first_source = first.worker.source
        assert isinstance(first_source, KafkaSource)
        # Incremental (consumer protocol) or eager, the two own disjoint sets covering all 6 partitions
        # once the group has settled: the first gave up exactly what the second took.
        wait_until(
            lambda: (
                len(first_source.owned()) + len(source.owned()) == 6
                and not set(first_source.owned()) & set(source.owned())
            ),
            60,
            "the six partitions split between the two consumers",
        )
        app.produce(kafka_bootstrap, topic, events[2000:])
        wait_until(lambda: second.worker.stats["applied"] > 0, 60, "second consumer applying after the rebalance")
        second.stop()  # leaves: its partitions move back, its stored offsets committed on revoke
        wait_until(lambda: len(first_source.owned()) == 6, 60, "the first consumer owning all six again")
        wait_until(lambda: effects() >= len(events), 90, "all events")
    finally:
        first.stop()
    assert first.worker.stats["applied"] + second.worker.stats["applied"] == len(events)
    assert_exactly_once_in_order(db, group, len(events))
    per_key = rows(db.conninfo, "SELECT key, array_agg(seq ORDER BY id) FROM effects GROUP BY key")
    assert all(seqs == sorted(seqs) for _, seqs in per_key)


def test_batch_mode_dedupes_in_bulk_and_a_failing_event_does_not_poison_the_batch(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    import psycopg

    db = migrated_database
    app.create_tables(db.conninfo)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('k3')")
    topic = topics("batch", partitions=2)
    events = app.make_events(2000, keys=20)
    sent = app.produce(kafka_bootstrap, topic, events, twice=set(range(0, 2000, 20)))
    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), batch_size=200)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    try:
        wait_until(lambda: sum(w.worker.stats.values()) >= sent, 90, "every message has an outcome")
    finally:
        w.stop()
    k3 = [e for e in events if e.key == "k3"]
    assert w.worker.stats["applied"] == 2000 - len(k3)
    assert w.worker.stats["duplicate"] == 100 - 0  # i % 20 == 0 are all key k0, never broken
    assert w.worker.stats["dead_lettered"] == 1 and w.worker.stats["parked"] == len(k3) - 1
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 2000 - len(k3)
    assert scalar(db.conninfo, "SELECT count(DISTINCT event_id) FROM effects") == 2000 - len(k3)
