"""dailyfeed's activity service on the document store (issue 18): ``member_activities`` and the
listener dead letters in FerretDB (MongoDB wire protocol), events through the real Kafka broker.

The reconciliation is read from the collections and the produced events, as ``make demo``'s:
300 content events over 60 posts of 6 members, 30 of them produced twice (redeliveries); member 3
on hold while the worker runs (its events are dead-lettered in the document store), the worker
stopped and a new one started half-way, the hold released and the listener restore job run over
the document store. Expected: lost = duplicates = open dead letters = 0.
"""

from __future__ import annotations

import threading
from typing import Any

from examples.dailyfeed.activity.documents import ACTIVITIES, ON_HOLD, registry

from kafkaguard import ConsumerSettings, Event, KafkaguardSettings, ListenerRestoreJob, Worker
from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.policies.backoff import Fixed
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.stores.mongo_documents import LISTENER_DEAD_LETTERS
from kafkaguard.testing.fixtures import TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import wait_until

EVENTS = 300
ON_HOLD_MEMBER = 3


def _events() -> list[Event]:
    out = []
    for i in range(EVENTS):
        post, member = i % 60 + 1, i % 6 + 1
        kind = "post.created" if i < 60 else "post.updated"
        out.append(Event(type=kind, key=f"post-{post}", payload={"member_id": member, "post_id": post}))
    return out


def _start(settings: KafkaguardSettings) -> tuple[Worker, threading.Thread]:
    worker = Worker.from_settings(settings, registry)
    thread = threading.Thread(target=worker.run, name="activity-documents", daemon=True)
    thread.start()
    return worker, thread


def _stop(worker: Worker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(30)
    assert not thread.is_alive(), "worker did not stop"


def test_activity_service_on_the_document_store_reconciles_with_nothing_lost_or_doubled(
    kafka_bootstrap: str, topics: TopicFactory, ferretdb: FerretDbServer, mongo_database: Any
) -> None:
    db = mongo_database
    topic = topics("dailyfeed-documents", partitions=3)
    consumer = ConsumerSettings(
        group_id=app.new_group(), topics=(topic,), retry=RetryPolicy(max_attempts=2, backoff=Fixed(seconds=0.01))
    )
    settings = KafkaguardSettings(
        bootstrap_servers=kafka_bootstrap, database_url=ferretdb.url(db.name), consumer=consumer
    )
    db[ON_HOLD].insert_one({"_id": ON_HOLD_MEMBER})
    events = _events()
    held = {str(e.event_id) for e in events if e.payload["member_id"] == ON_HOLD_MEMBER}
    applied = lambda: db[ACTIVITIES].count_documents({})  # noqa: E731

    worker, thread = _start(settings)
    try:
        app.produce(kafka_bootstrap, topic, events[:150], twice=set(range(0, 150, 10)))
        wait_until(lambda: applied() >= 100, 90, "the first worker applying")
    finally:
        _stop(worker, thread)
    worker, thread = _start(settings)  # a new worker takes over from the committed offsets
    try:
        app.produce(kafka_bootstrap, topic, events[150:], twice=set(range(0, 150, 10)))
        # Every event not on hold applied; the held member's first event per post dead-lettered, later ones parked.
        wait_until(lambda: applied() == EVENTS - len(held), 120, "every event not on hold")
        dead_lettered = lambda: {str(i) for i in db[LISTENER_DEAD_LETTERS].distinct("event_id")}  # noqa: E731
        wait_until(lambda: dead_lettered() == held, 60, "every held event in the dead letters")
    finally:
        _stop(worker, thread)
    statuses = {d["status"] for d in db[LISTENER_DEAD_LETTERS].find({}, {"status": 1})}
    assert statuses == {"pending", "parked"}, statuses

    db[ON_HOLD].delete_many({})
    job = ListenerRestoreJob.from_settings(settings, registry)
    for _ in range(20):  # each run restores every due key's records in order; one run should do
        job.run_once()
        if db[LISTENER_DEAD_LETTERS].count_documents({"status": {"$ne": "restored"}}) == 0:
            break

    records = db[LISTENER_DEAD_LETTERS].count_documents({})
    stored = {d["_id"]: d for d in db[ACTIVITIES].find()}
    produced = {str(e.event_id) for e in events}
    lost = len(produced - set(stored))
    duplicates = sum(d["apply_count"] - 1 for d in stored.values())
    phantom = len(set(stored) - produced)
    still_open = db[LISTENER_DEAD_LETTERS].count_documents({"status": {"$ne": "restored"}})
    print(
        f"\ndocument store reconciliation: produced {len(produced)} (+30 redelivered), applied {len(stored)},"
        f" dead-lettered {len(held)} events in {records} records, lost {lost}, duplicates {duplicates},"
        f" phantom {phantom}, open {still_open}"
    )
    assert (lost, duplicates, phantom, still_open) == (0, 0, 0, 0)
    assert {d["member_id"] for d in stored.values()} == set(range(1, 7))
