"""`kafkaguard consume` on a ``mongodb://`` URL (issue 18 item 8: one URL decides the store), as a
user runs it: a subprocess with the URL in the environment applies dailyfeed's activity handlers
into FerretDB from the real broker, each event once; a server that does not answer or a bad URL is
one line, without the URL's credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from examples.dailyfeed.activity.documents import ACTIVITIES

from kafkaguard import Event
from kafkaguard.devstack import process
from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.testing.fixtures import TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
TARGET = "examples.dailyfeed.activity.documents:registry"
EVENTS = 40


def _env(url: str, bootstrap: str) -> dict[str, str]:
    kept = {k: v for k, v in os.environ.items() if not k.startswith("KAFKAGUARD_") or k == "KAFKAGUARD_RUN_DIR"}
    return {**kept, "KAFKAGUARD_DATABASE_URL": url, "KAFKAGUARD_BOOTSTRAP_SERVERS": bootstrap,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}  # fmt: skip


def _consume(group: str, topic: str) -> list[str]:
    return [sys.executable, "-m", "kafkaguard", "consume", TARGET, "--group", group, "--topic", topic]


def test_consume_with_a_mongodb_url_applies_every_event_once(
    ferretdb: FerretDbServer, mongo_database: Any, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    topic = topics("content")
    events = [Event(type="post.created", key=f"post-{i % 8}", payload={"member_id": i % 4 + 1, "post_id": i + 1})
              for i in range(EVENTS)]  # fmt: skip
    app.produce(kafka_bootstrap, topic, events, twice={0, 7, 21})  # three redelivered copies
    env = _env(ferretdb.url(str(mongo_database.name)), kafka_bootstrap)
    log = Path(os.environ.get("KAFKAGUARD_RUN_DIR", ".run")) / f"consume-mongo-{topic}.log"
    with log.open("w") as out:
        worker = subprocess.Popen(_consume("activity", topic), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: mongo_database[ACTIVITIES].count_documents({}) >= EVENTS, timeout=90, what="all applied")
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
    text = log.read_text()
    assert code == 0, text
    assert "MongoDB 127.0.0.1:" in text  # the banner names the document store
    docs = list(mongo_database[ACTIVITIES].find({}, {"apply_count": 1}))
    assert sorted(d["_id"] for d in docs) == sorted(str(e.event_id) for e in events)
    assert {d["apply_count"] for d in docs} == {1}  # the redelivered copies were dropped by the inbox


def test_an_unanswering_server_and_a_bad_url_are_one_line_without_credentials(kafka_bootstrap: str) -> None:
    port = process.free_ports(1)[0]
    for url, said in (
        (f"mongodb://reader:S3cret-pw@127.0.0.1:{port}/activity", f"the document store 127.0.0.1:{port}/activity"),
        (f"mongodb://reader:S3cret-pw@127.0.0.1:{port}/activity?nosuchoption=1", "not a usable MongoDB URL"),
    ):
        env = _env(url, kafka_bootstrap)
        done = subprocess.run(_consume("g", "t"), env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and said in errors[0], done.stderr
        assert "S3cret-pw" not in done.stderr + done.stdout and "Traceback" not in done.stderr
