"""The publisher restore job over the document store (issue 18 item 7), on the real broker and
FerretDB: built from a ``mongodb://`` URL alone, it republishes every due record once in per-key
order, or hands them to the consumer store in the same database; the operator commands that read
SQL tables refuse the URL in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from kafkaguard import KafkaguardSettings, MongoPublisherDeadLetters, PublisherRestoreJob
from kafkaguard.db.columns import PublishSource
from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaUnavailableError
from kafkaguard.stores.mongo_documents import LISTENER_DEAD_LETTERS, PUBLISHER_DEAD_LETTERS
from kafkaguard.testing.fixtures import TopicFactory
from tests.integration.kafka_helpers import consume_all

KEYS, PER_KEY = 4, 6


def _fill(db: Any, topic: str) -> dict[str, list[str]]:
    """Dead letters interleaved across keys (id order is not key order); each key's event ids in order."""
    store = MongoPublisherDeadLetters(db)
    store.ensure_indexes()
    expected: dict[str, list[str]] = {}
    for n in range(PER_KEY):
        for k in range(KEYS):
            event = Event(type="post.created", key=f"member-{k}", payload={"n": n, "text": "안녕"})
            store.add(None, event, topic=topic, source=PublishSource.DIRECT, error=KafkaUnavailableError("down"))
            expected.setdefault(event.key, []).append(str(event.event_id))
    return expected


def _url(ferretdb: FerretDbServer, db: Any) -> str:
    return ferretdb.url(str(db.name))


def test_republish_from_a_mongodb_url_once_each_in_key_order(
    ferretdb: FerretDbServer, mongo_database: Any, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    topic = topics("content")
    expected = _fill(mongo_database, topic)
    settings = KafkaguardSettings(bootstrap_servers=kafka_bootstrap, database_url=_url(ferretdb, mongo_database))
    job = PublisherRestoreJob.from_settings(settings)
    try:
        report = job.run_once()
        assert (report.restored, report.failed) == (KEYS * PER_KEY, 0)
        assert job.run_once().restored == 0  # nothing left
    finally:
        job.close()

    messages = consume_all(kafka_bootstrap, topic, KEYS * PER_KEY, timeout=60)
    assert len(messages) == KEYS * PER_KEY
    got: dict[str, list[str]] = {}
    for m in messages:
        headers = dict(m.headers() or [])
        got.setdefault((m.key() or b"").decode(), []).append(headers["event_id"].decode())
    assert got == expected  # every record once, each key in the order its records were written
    statuses = {d["status"] for d in mongo_database[PUBLISHER_DEAD_LETTERS].find({}, {"status": 1})}
    assert statuses == {"restored"}


def test_handoff_from_a_mongodb_url_writes_listener_dead_letters_in_the_same_database(
    ferretdb: FerretDbServer, mongo_database: Any, topics: TopicFactory, kafka_bootstrap: str
) -> None:
    topic = topics("content")
    expected = _fill(mongo_database, topic)
    settings = KafkaguardSettings.model_validate(
        {
            "bootstrap_servers": kafka_bootstrap,
            "database_url": _url(ferretdb, mongo_database),
            "restore": {"publisher_strategy": "handoff", "handoff_group": "activity"},
        }
    )
    job = PublisherRestoreJob.from_settings(settings)
    try:
        assert job.run_once().restored == KEYS * PER_KEY
    finally:
        job.close()
    listener = list(mongo_database[LISTENER_DEAD_LETTERS].find({"consumer_group": "activity"}))
    assert sorted(str(d["event_id"]) for d in listener) == sorted(i for ids in expected.values() for i in ids)
    assert {(d["status"], d["reason"]) for d in listener} == {("pending", "handoff")}
    assert {d["status"] for d in mongo_database[PUBLISHER_DEAD_LETTERS].find({}, {"status": 1})} == {"restored"}


def test_operator_commands_on_a_mongodb_url_say_what_serves_it(ferretdb: FerretDbServer) -> None:
    env = {**os.environ, "KAFKAGUARD_DATABASE_URL": ferretdb.url()}
    for args in (["dead-letters", "list"], ["restore", "publisher", "--once"]):
        done = subprocess.run(
            [sys.executable, "-m", "kafkaguard", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0
        assert "mongodb:// URL (the document store)" in done.stderr and "Traceback" not in done.stderr
