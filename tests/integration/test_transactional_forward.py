"""Kafka-to-Kafka with a transactional producer: killed -9 three times, every input forwarded exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from kafkaguard.testing.fixtures import TopicFactory
from tests.integration import consumer_app
from tests.integration.consumer_helpers import REPO
from tests.integration.relay_helpers import TopicReader, header, payload, wait_until

N = 3000


def spawn(bootstrap: str, group: str, source: str, output: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "FORWARD_OUTPUT_TOPIC": output}
    # A short session: the killed instance's partitions move to its successor within seconds.
    env["KAFKAGUARD_CONSUMER_CLIENT"] = json.dumps({"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    cmd = [
        sys.executable, "-m", "kafkaguard", "forward", "tests.integration.forward_app:transform",
        "--group", group, "--topic", source, "--transactional-id", f"{group}-0", "--bootstrap-servers", bootstrap,
        "--batch-size", "100", "--log-level", "WARNING",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def test_forwarder_killed_three_times_outputs_each_input_once(
    kafka_bootstrap: str, topics: TopicFactory, tmp_path: Path
) -> None:
    source, output = topics("in"), topics("out")
    dlq = topics("in.dlq")
    events = consumer_app.make_events(N, keys=30)
    consumer_app.produce(kafka_bootstrap, source, events[: N // 2])
    poison = Producer({"bootstrap.servers": kafka_bootstrap})
    poison.produce(source, key=b"k0", value=b"not json", headers=[("event_id", b"x"), ("type", b"test.applied")])
    poison.flush(10)
    consumer_app.produce(kafka_bootstrap, source, events[N // 2 :])

    group = consumer_app.new_group()
    reader = TopicReader(kafka_bootstrap, output)  # read_committed: librdkafka's default isolation
    rng = random.Random(11)
    proc = spawn(kafka_bootstrap, group, source, output, tmp_path / "forward.log")
    try:
        for kill in range(3):
            target = (kill + 1) * N // 5 + rng.randrange(100)
            wait_until(lambda t=target: (reader.poll_for(0.3), len(reader.messages) >= t)[1], 120, f"{target} outputs")
            proc.send_signal(signal.SIGKILL)  # mid-transaction, most likely
            proc.wait(10)
            proc = spawn(kafka_bootstrap, group, source, output, tmp_path / "forward.log")
        wait_until(lambda: (reader.poll_for(0.3), len(reader.messages) >= N)[1], 180, "every input forwarded")
        reader.poll_for(2.0)  # anything extra (a duplicate) would arrive now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.close()

    sources = [payload(m)["source"] for m in reader.messages]
    assert len(sources) == N, f"{len(sources) - len(set(sources))} duplicates"  # exactly once
    assert set(sources) == {str(e.event_id) for e in events}
    per_key: dict[str, list[int]] = {}
    for m in reader.messages:
        per_key.setdefault(m.key().decode(), []).append(payload(m)["seq"])
    assert all(seqs == sorted(seqs) for seqs in per_key.values())  # per-key order kept
    dead = TopicReader(kafka_bootstrap, dlq)
    wait_until(lambda: (dead.poll_for(0.3), len(dead.messages) >= 1)[1], 30, "the poison input in the DLQ topic")
    dead.close()
    assert len(dead.messages) == 1 and header(dead.messages[0], "kafkaguard.original.topic") == source
