"""The `http` publish mode's receiving endpoint: applied, duplicate, permanent (4xx), retriable (5xx)."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kafkaguard.consumer.http import receiving_router
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase
from tests.http_auth import RECEIVER, Signing
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import scalar


def test_http_endpoint_answers_by_outcome(migrated_database: TestDatabase) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    engine = sync_engine(db.server.url(), schema=db.schema)
    api = FastAPI()
    api.include_router(receiving_router(app.registry, engine, "http-group", settings=RECEIVER))
    client = TestClient(api)
    client.auth = Signing()
    event = Event(type="test.applied", key="h1", payload={"seq": 0})

    first = client.post("/kafkaguard/events", json=event.to_json())
    again = client.post("/kafkaguard/events", json=event.to_json())
    assert (first.status_code, first.json()["status"]) == (200, "applied")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 1

    assert client.post("/kafkaguard/events", json={"nope": 1}).status_code == 400
    unknown = Event(type="test.unknown", key="h2", payload={})
    assert client.post("/kafkaguard/events", json=unknown.to_json()).status_code == 404
    missing_seq = Event(type="test.applied", key="h3", payload={})  # handler raises KeyError: permanent
    assert client.post("/kafkaguard/events", json=missing_seq.to_json()).status_code == 422
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('h4')")  # RuntimeError: retriable by default
    broken = Event(type="test.applied", key="h4", payload={"seq": 0})
    assert client.post("/kafkaguard/events", json=broken.to_json()).status_code == 503
    assert scalar(db.conninfo, "SELECT count(*) FROM kafka_inbox") == 1  # failures left no inbox row
    engine.dispose()
