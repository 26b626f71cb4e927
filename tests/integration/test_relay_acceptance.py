"""Acceptance of the outbox relay on the real Kafka and PostgreSQL.

1. 10,000 events over 200 keys from concurrent writers (some transactions rolled back on purpose),
   two relay processes, one killed with SIGKILL mid-run: every committed event reaches Kafka in
   per-key commit order, none from a rolled-back transaction.
2. The broker stopped for 20 s mid-run: nothing is lost or dead-lettered, the relay resumes alone.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_event, add_events
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_admin import delete_topics
from tests.integration.relay_helpers import TopicReader, relay_thread, scalar, start_relay_process, wait_until

KEYS, PER_KEY, WRITERS, KEYS_PER_TX = 200, 50, 8, 5


def _shard_owners(db: TestDatabase) -> int:
    """Distinct relay connections holding shard locks of this schema."""
    return int(
        scalar(
            db,
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
            " AND classid::bigint = (hashtext('kafkaguard.relay:' || %s) & 2147483647)",
            (db.schema,),
        )
    )


def test_10k_events_two_relay_processes_one_killed(
    migrated_database: TestDatabase, kafka_bootstrap: str, tmp_path: Path
) -> None:
    aggregate = f"chaos{uuid.uuid4().hex[:8]}"
    topic = topic_for(aggregate)
    engine = sync_engine(migrated_database.url, pool_size=WRITERS)
    committed: dict[str, list[str]] = {}
    rolled_back: set[str] = set()
    written = [0]
    lock = threading.Lock()

    def writer(w: int) -> None:
        keys = [f"key-{k:03d}" for k in range(w, KEYS, WRITERS)]
        for n in range(PER_KEY):
            for start in range(0, len(keys), KEYS_PER_TX):
                group = keys[start : start + KEYS_PER_TX]
                events = [Event(type=f"{aggregate}.changed", key=k, payload={"n": n}) for k in group]
                with Session(engine) as session, session.begin():
                    add_events(session, events)
                with lock:
                    for ev in events:
                        committed.setdefault(ev.key, []).append(str(ev.event_id))
                    written[0] += len(events)
                if (n + start) % 7 == 0:  # a transaction that rolls back publishes nothing
                    ghost = Event(type=f"{aggregate}.changed", key=group[0], payload={"ghost": True})
                    session = Session(engine)
                    session.begin()
                    add_event(session, ghost)
                    session.flush()
                    session.rollback()
                    session.close()
                    with lock:
                        rolled_back.add(str(ghost.event_id))

    started = time.monotonic()
    relays = [start_relay_process(migrated_database, kafka_bootstrap, tmp_path / f"relay-{i}.log") for i in (1, 2)]
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in threads:
            t.start()
        wait_until(lambda: _shard_owners(migrated_database) == 2, 60, "both relays owning shards")
        wait_until(lambda: written[0] >= 4000, 120, "4,000 events written")
        relays[0].send_signal(signal.SIGKILL)  # mid-run: rows in flight, shards held
        relays[0].wait(10)
        killed_at = time.monotonic()
        for t in threads:
            t.join()
        write_seconds = time.monotonic() - started
        wait_until(lambda: _shard_owners(migrated_database) == 1, 30, "the survivor alone owning shards")
        # The survivor takes the dead instance's shards at its next rebalance (within a poll interval).
        wait_until(
            lambda: scalar(migrated_database, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") >= 64,
            30,
            "the survivor holding all 64 shards",
        )
        wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 120, "an empty outbox")
        total = sum(len(v) for v in committed.values())
        wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= total)[1], 120, "every event on Kafka")
        elapsed = time.monotonic() - started
    finally:
        for p in relays:
            if p.poll() is None:
                p.terminate()
                p.wait(30)
        reader.close()
        engine.dispose()
        delete_topics(kafka_bootstrap, [topic])

    assert total == KEYS * PER_KEY
    seen = reader.event_ids()
    assert not (seen & rolled_back), "events of rolled-back transactions were published"
    assert reader.per_key_first_seen() == committed, "per-key commit order broken or an event lost"
    assert scalar(migrated_database, "SELECT count(*) FROM kafka_publisher_dead_letters") == 0
    duplicates = len(reader.messages) - len(seen)
    print(
        f"\n10k relay: {total} events ({len(rolled_back)} rolled back), writes {write_seconds:.1f} s, "
        f"all on Kafka after {elapsed:.1f} s ({total / elapsed:.0f} events/s end to end), "
        f"{duplicates} duplicates after the kill at +{killed_at - started:.1f} s"
    )


def test_broker_stopped_20s_relay_resumes_alone(migrated_database: TestDatabase, dedicated_kafka: KafkaCluster) -> None:
    bootstrap = dedicated_kafka.bootstrap
    topic = f"outage.{uuid.uuid4().hex[:8]}"
    engine = sync_engine(migrated_database.url)
    expected: dict[str, list[str]] = {}

    def write(count: int, tag: str) -> None:
        with Session(engine) as session, session.begin():
            for i in range(count):
                ev = Event(type="doc.saved", key=f"k{i % 10}", payload={"tag": tag, "i": i})
                add_event(session, ev, topic=topic)
                expected.setdefault(ev.key, []).append(str(ev.event_id))

    with relay_thread(migrated_database, bootstrap, delivery_timeout=4, max_backoff=2):
        write(100, "before")
        wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 60, "the first events")
        dedicated_kafka.node(1).stop()
        outage_started = time.monotonic()
        for batch in range(3):
            write(100, f"during-{batch}")
        # For the whole outage: everything stays in the outbox, nothing is dead-lettered.
        while time.monotonic() - outage_started < 20:
            assert scalar(migrated_database, "SELECT count(*) FROM outbox") == 300
            assert scalar(migrated_database, "SELECT count(*) FROM kafka_publisher_dead_letters") == 0
            time.sleep(1)  # the outage's length is the scenario, not a synchronisation
        dedicated_kafka.restart(1)
        back = time.monotonic()
        resumed = wait_until(
            lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 90, "the relay to catch up"
        )
        print(f"\noutage: broker back after {back - outage_started:.1f} s; outbox drained {resumed:.1f} s later")
    engine.dispose()
    reader = TopicReader(bootstrap, topic)
    wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= 400)[1], 60, "all 400 events")
    reader.close()
    assert reader.per_key_first_seen() == expected
    assert scalar(migrated_database, "SELECT count(*) FROM kafka_publisher_dead_letters") == 0
