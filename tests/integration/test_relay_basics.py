"""The relay publishes outbox rows in the envelope's Kafka form and removes them only after the ack."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.orm import Session

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_event
from kafkaguard.testing.fixtures import TestDatabase
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_admin import delete_topics
from tests.integration.relay_helpers import TopicReader, header, payload, relay_thread, scalar, wait_until

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def aggregate(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh aggregate type, so the relay creates (and the test deletes) its own topic."""
    name = f"agg{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(kafka_bootstrap, [topic_for(name)])


def test_debezium_row_and_kafkaguard_row_read_by_plain_clients(
    migrated_database: TestDatabase, kafka_bootstrap: str, aggregate: str
) -> None:
    engine = sync_engine(migrated_database.url)
    event = Event(
        type=f"{aggregate}.created", key="k-1", payload={"title": "héllo"}, headers={"traceparent": TRACEPARENT}
    )
    with Session(engine) as session, session.begin():
        add_event(session, event)
    engine.dispose()
    debezium_id = uuid.uuid4()
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s, %s::jsonb)",
            (debezium_id, aggregate, "k-2", f"{aggregate}.updated", json.dumps({"n": 2})),
        )
    topic = topic_for(aggregate)
    reader = TopicReader(kafka_bootstrap, topic)
    with relay_thread(migrated_database, kafka_bootstrap):
        wait_until(lambda: scalar(migrated_database, "SELECT count(*) FROM outbox") == 0, 60, "an empty outbox")
        wait_until(lambda: (reader.poll_for(0.5), len(reader.messages) >= 2)[1], 60, "two messages")
    reader.close()
    by_key = {m.key().decode(): m for m in reader.messages}
    ours = by_key["k-1"]
    assert payload(ours) == {"title": "héllo"}
    assert header(ours, "event_id") == str(event.event_id)
    assert header(ours, "type") == f"{aggregate}.created"
    assert header(ours, "aggregate_type") == aggregate
    assert header(ours, "schema_version") == "1"
    assert header(ours, "traceparent") == TRACEPARENT
    assert header(ours, "occurred_at") == event.occurred_at.isoformat()
    theirs = by_key["k-2"]
    assert header(theirs, "event_id") == str(debezium_id)
    assert header(theirs, "type") == f"{aggregate}.updated"
    assert payload(theirs) == {"n": 2}

    # kcat, knowing nothing of kafkaguard, reads key, headers and the JSON value the same way.
    out = subprocess.run(
        ["kcat", "-b", kafka_bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\t%h\t%s\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("k-1\t"))
    _, headers, value = line.split("\t")
    assert f"event_id={event.event_id}" in headers and f"traceparent={TRACEPARENT}" in headers
    assert json.loads(value) == {"title": "héllo"}


def test_mark_mode_keeps_rows_with_published_at(
    migrated_database: TestDatabase, kafka_bootstrap: str, aggregate: str
) -> None:
    engine = sync_engine(migrated_database.url)
    with Session(engine) as session, session.begin():
        for i in range(5):
            add_event(session, Event(type=f"{aggregate}.x", key=f"k{i}", payload={"i": i}))
    engine.dispose()
    with relay_thread(migrated_database, kafka_bootstrap, delete_published=False):
        wait_until(
            lambda: scalar(migrated_database, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
            60,
            "every row marked published",
        )
    assert scalar(migrated_database, "SELECT count(*) FROM outbox") == 5
    reader = TopicReader(kafka_bootstrap, topic_for(aggregate))
    wait_until(lambda: (reader.poll_for(0.5), len(reader.event_ids()) == 5)[1], 60, "five events on Kafka")
    reader.close()
