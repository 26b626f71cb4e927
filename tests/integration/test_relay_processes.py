"""``kafkaguard relay --processes N`` on the real Kafka and PostgreSQL.

1. Three processes from one command share the 64 shards and relay 6,000 events over 300 keys
   (written in many transactions while they run): every event reaches Kafka, per key in commit
   order (duplicates allowed, never a reordering), the outbox ends empty, nothing dead-lettered;
   SIGTERM to the command stops every child and it exits 0.
2. A child killed with SIGKILL: the command stops the others and exits non-zero (the service
   manager restarts it); every other child is gone with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_admin import delete_topics
from tests.integration.relay_helpers import TopicReader, scalar, wait_until

KEYS, PER_KEY, PER_TX = 300, 20, 50


def _is_split(owners: list[int], processes: int) -> bool:
    """Every shard held, by ``processes`` connections, none above its fair share (ceil(64 / n))."""
    return len(owners) == processes and sum(owners) == 64 and max(owners) <= -(-64 // processes)


def _start(db: TestDatabase, bootstrap: str, log: Path, processes: int) -> subprocess.Popen[bytes]:
    environ = {**os.environ, "KAFKAGUARD_TOPICS__PARTITIONS": "3"}
    cmd = [sys.executable, "-m", "kafkaguard", "relay", "--url", db.url, "--bootstrap-servers", bootstrap]
    cmd += ["--poll-interval", "0.5", "--processes", str(processes), "--name", "multi"]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=environ)


def _children(pid: int) -> list[int]:
    """The relay children of ``pid`` (multiprocessing's spawned processes, not its resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            found.append(int(child))
    return found


def _write(db: TestDatabase, aggregate: str) -> dict[str, list[str]]:
    """KEYS x PER_KEY events in transactions of PER_TX, keys interleaved; the committed order per key."""
    engine = sync_engine(db.url, pool_size=1)
    committed: dict[str, list[str]] = {}
    events = [
        Event(type=f"{aggregate}.changed", key=f"k{k:03d}", payload={"n": n})
        for n in range(PER_KEY)
        for k in range(KEYS)
    ]
    try:
        for start in range(0, len(events), PER_TX):
            chunk = events[start : start + PER_TX]
            with Session(engine) as session, session.begin():
                add_events(session, chunk)
            for ev in chunk:
                committed.setdefault(ev.key, []).append(str(ev.event_id))
    finally:
        engine.dispose()
    return committed


def test_three_processes_relay_everything_in_key_order_and_stop_cleanly(
    migrated_database: TestDatabase, kafka_bootstrap: str, tmp_path: Path
) -> None:
    aggregate = f"procs{uuid.uuid4().hex[:8]}"
    topic = topic_for(aggregate)
    relay = _start(migrated_database, kafka_bootstrap, tmp_path / "relay.log", 3)
    reader = TopicReader(kafka_bootstrap, topic)
    try:
        owners = migrated_database.relay_shard_owners
        wait_until(lambda: _is_split(owners(), 3), 120, "three relay processes sharing the shards")
        committed = _write(migrated_database, aggregate)
        wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 120, "an empty outbox")
        total = KEYS * PER_KEY
        wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) >= total)[1], 120, "every event on Kafka")
        assert len(_children(relay.pid)) == 3
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(90) == 0, (tmp_path / "relay.log").read_text()[-3000:]
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(30)
        reader.close()
        delete_topics(kafka_bootstrap, [topic])
    assert reader.per_key_first_seen() == committed, "per-key commit order broken or an event lost"
    assert scalar(migrated_database, "SELECT count(*) FROM kafka_publisher_dead_letters") == 0
    assert migrated_database.relay_shard_owners() == [], "a child outlived the command"


def test_a_killed_child_stops_the_command_with_an_error(
    migrated_database: TestDatabase, kafka_bootstrap: str, tmp_path: Path
) -> None:
    relay = _start(migrated_database, kafka_bootstrap, tmp_path / "relay.log", 2)
    try:
        owners = migrated_database.relay_shard_owners
        wait_until(lambda: _is_split(owners(), 2), 120, "two relay processes sharing the shards")
        os.kill(_children(relay.pid)[0], signal.SIGKILL)
        assert relay.wait(90) != 0
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(30)
    wait_until(lambda: migrated_database.relay_shard_owners() == [], 30, "every child gone")
