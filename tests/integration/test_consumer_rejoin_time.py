"""How long a `kafkaguard consume` process killed with SIGKILL and restarted at once takes to apply
its next event, per group protocol, with and without static membership (figures for
docs/concepts/consumer.md; printed, run with ``-s``).

Kafka's defaults throughout (session timeouts of 45 s: the client's ``session.timeout.ms`` for
classic, the broker's ``group.consumer.session.timeout.ms`` for the consumer protocol): the point is
what a deployment gets without tuning.

Each kill waits out a 45 s session, so ``make test`` kills once per case; the documented figures
come from ``KAFKAGUARD_REJOIN_TRIES=2``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kafkaguard.consumer.settings import GroupProtocol
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import scalar, spawn_cli_consumer, wait_until

pytestmark = pytest.mark.slow

TRIES_ENV = "KAFKAGUARD_REJOIN_TRIES"
TRIES = int(os.environ.get(TRIES_ENV, "1"))
BATCH = 20


@pytest.mark.parametrize("static", [False, True], ids=["dynamic", "static"])
@pytest.mark.parametrize("protocol", list(GroupProtocol))
def test_time_from_kill_and_restart_to_next_applied_event(
    kafka_bootstrap: str,
    topics: TopicFactory,
    migrated_database: TestDatabase,
    tmp_path: Path,
    protocol: GroupProtocol,
    static: bool,
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics(f"rejoin-{protocol}-{static}", partitions=3)
    group = app.new_group()
    events = app.make_events(BATCH * (TRIES + 1), keys=6)
    env = {"KAFKAGUARD_CONSUMER__GROUP_PROTOCOL": protocol.value}
    if static:
        env["KAFKAGUARD_CONSUMER__INSTANCE_ID"] = f"{group}-0"
    log = tmp_path / "consumer.log"
    effects = lambda: int(scalar(db.conninfo, "SELECT count(*) FROM effects"))  # noqa: E731

    def spawn() -> subprocess.Popen[bytes]:
        url = db.server.url()
        return spawn_cli_consumer(kafka_bootstrap, url, db.schema, group, topic, log, client={}, env_extra=env)

    proc = spawn()
    try:
        app.produce(kafka_bootstrap, topic, events[:BATCH])
        wait_until(lambda: effects() >= BATCH or proc.poll() is not None, 90, "the first consumer applying")
        assert proc.poll() is None, log.read_text()[-3000:]
        figures: list[float] = []
        restarts = 0
        for i in range(1, TRIES + 1):
            before = effects()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed = time.monotonic()
            proc = spawn()
            app.produce(kafka_bootstrap, topic, events[BATCH * i : BATCH * (i + 1)])
            deadline = killed + 120
            # A supervisor's part: a worker that stopped (the consumer protocol refuses a static
            # member's restart while its dead predecessor's session lasts) is started again.
            while effects() <= before:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                if proc.poll() is not None:
                    restarts += 1
                    proc = spawn()
                time.sleep(0.05)
            figures.append(time.monotonic() - killed)
        wait_until(lambda: effects() >= len(events), 120, "every event")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    label = f"{protocol}{'+static' if static else ''}"
    shown = ", ".join(f"{f:.1f} s" for f in figures)
    print(f"\nrejoin {label}: kill+restart -> next applied event: {shown} ({restarts} more restarts)")
    if protocol is GroupProtocol.CONSUMER and static:
        # Documented in docs/concepts/consumer.md: this is why classic+static is the fast pair.
        assert restarts > 0 and "instance ID is still used" in log.read_text()
    else:
        assert restarts == 0, log.read_text()[-3000:]
    assert effects() == len(events), "no loss or duplicate across the kills"
