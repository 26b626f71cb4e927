"""Authenticated ``http`` delivery against the real PostgreSQL (issue 17, item 5).

A request the receiving endpoint cannot authenticate is answered 401 and leaves nothing behind: no
inbox row (so the real event with the same id is not later skipped as a duplicate), no effect, no
dead letter. Signed requests apply as before; rotation and bearer tokens; the publisher signs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from kafkaguard import Publisher, PublishOutcome
from kafkaguard.consumer.http import receiving_router
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.process import free_ports
from kafkaguard.envelope import Event
from kafkaguard.errors import ConfigurationError
from kafkaguard.http_signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, HttpAuth, RequestAuth
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.testing.fixtures import TestDatabase
from tests.examples.serving import serving
from tests.http_auth import RECEIVER, SECRET, Signing
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import rows, scalar

PATH = "/kafkaguard/events"
OLD_SECRET = "tests-http-old-secret-fedcba987654"
TOKEN = "tests-gateway-token-0123456789"


@dataclass
class Endpoint:
    """A receiving endpoint over the test's schema, and what it left in the database."""

    db: TestDatabase
    engine: Engine

    def client(self, settings: ConsumerSettings) -> TestClient:
        api = FastAPI()
        api.include_router(receiving_router(app.registry, self.engine, "auth-group", settings=settings))
        return TestClient(api)

    def left_behind(self) -> dict[str, int]:
        counts = {}
        for table in ("kafka_inbox", "effects", "kafka_listener_dead_letters"):
            counts[table] = scalar(self.db.conninfo, f"SELECT count(*) FROM {table}")  # table names are constants
        return counts


NOTHING = {"kafka_inbox": 0, "effects": 0, "kafka_listener_dead_letters": 0}


@pytest.fixture
def endpoint(migrated_database: TestDatabase) -> Iterator[Endpoint]:
    app.create_tables(migrated_database.conninfo)
    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    yield Endpoint(migrated_database, engine)
    engine.dispose()


def body(event: Event) -> bytes:
    return json.dumps(event.to_json()).encode()


def assert_refused(response: Any, reason: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"status": "unauthorized", "reason": reason}


def test_a_forged_envelope_is_refused_and_the_real_event_then_applies(endpoint: Endpoint) -> None:
    client = endpoint.client(RECEIVER)
    real = Event(type="test.applied", key="victim", payload={"seq": 0})
    forged = body(real).replace(b'"seq": 0', b'"seq": 666')
    response = client.post(PATH, content=forged, headers={"content-type": "application/json"})
    assert_refused(response, "missing_signature")
    assert endpoint.left_behind() == NOTHING  # no inbox row: the real event is not a "duplicate" later
    for text in (SECRET, "666", "victim"):
        assert text not in response.text

    client.auth = Signing()
    applied = client.post(PATH, content=body(real))
    assert (applied.status_code, applied.json()["status"]) == (200, "applied")
    assert rows(endpoint.db.conninfo, "SELECT event_id, key, seq FROM effects") == [(real.event_id, "victim", 0)]


def test_a_tampered_body_or_timestamp_is_refused(endpoint: Endpoint) -> None:
    client = endpoint.client(RECEIVER)
    event = Event(type="test.applied", key="t1", payload={"seq": 0})
    headers = RequestAuth(HttpAuth.HMAC, (SECRET.encode(),)).headers(body(event), time.time())
    assert set(headers) == {TIMESTAMP_HEADER, SIGNATURE_HEADER}
    tampered = body(event).replace(b'"seq": 0', b'"seq": 1')
    assert_refused(client.post(PATH, content=tampered, headers=headers), "bad_signature")
    later = {**headers, TIMESTAMP_HEADER: str(int(headers[TIMESTAMP_HEADER]) + 1)}
    assert_refused(client.post(PATH, content=body(event), headers=later), "bad_signature")
    wrong_secret = client.post(PATH, content=body(event), auth=Signing("not-the-secret-0123456789"))
    assert_refused(wrong_secret, "bad_signature")
    assert endpoint.left_behind() == NOTHING
    accepted = client.post(PATH, content=body(event), headers=headers)  # the untouched request still applies
    assert (accepted.status_code, accepted.json()["status"]) == (200, "applied")


def test_a_stale_or_future_timestamp_is_refused(endpoint: Endpoint) -> None:
    client = endpoint.client(RECEIVER.model_copy(update={"http_replay_window": 60.0}))
    event = Event(type="test.applied", key="s1", payload={"seq": 0})
    assert_refused(client.post(PATH, content=body(event), auth=Signing(at=time.time() - 120)), "stale_timestamp")
    assert_refused(client.post(PATH, content=body(event), auth=Signing(at=time.time() + 120)), "stale_timestamp")
    assert endpoint.left_behind() == NOTHING
    fresh = client.post(PATH, content=body(event), auth=Signing(at=time.time() - 30))
    assert fresh.status_code == 200, fresh.text


def test_the_old_secret_is_accepted_while_listed(endpoint: Endpoint) -> None:
    rotating = endpoint.client(ConsumerSettings(http_secrets=(SecretStr(SECRET), SecretStr(OLD_SECRET))))
    events = [Event(type="test.applied", key=f"r{n}", payload={"seq": 0}) for n in range(3)]
    by_old = rotating.post(PATH, content=body(events[0]), auth=Signing(OLD_SECRET))
    by_new = rotating.post(PATH, content=body(events[1]), auth=Signing(SECRET))
    assert [by_old.json()["status"], by_new.json()["status"]] == ["applied", "applied"]
    rotated = endpoint.client(RECEIVER)  # the old secret removed
    assert_refused(rotated.post(PATH, content=body(events[2]), auth=Signing(OLD_SECRET)), "bad_signature")
    assert scalar(endpoint.db.conninfo, "SELECT count(*) FROM effects") == 2


def test_bearer_mode_accepts_a_listed_token_only(endpoint: Endpoint, tmp_path: Any) -> None:
    (tmp_path / "token").write_text(TOKEN + "\n")
    client = endpoint.client(ConsumerSettings(http_auth=HttpAuth.BEARER, http_token_files=(tmp_path / "token",)))
    event = Event(type="test.applied", key="b1", payload={"seq": 0})
    refused = client.post(PATH, content=body(event), headers={"Authorization": f"Bearer {TOKEN}x"})
    assert_refused(refused, "bad_token")
    assert refused.headers["www-authenticate"] == "Bearer"
    assert_refused(client.post(PATH, content=body(event), auth=Signing()), "missing_token")  # a signature is no token
    assert endpoint.left_behind() == NOTHING
    accepted = client.post(PATH, content=body(event), headers={"Authorization": f"Bearer {TOKEN}"})
    assert (accepted.status_code, accepted.json()["status"]) == (200, "applied")


def test_the_router_needs_credentials_or_an_explicit_opt_out(endpoint: Endpoint) -> None:
    with pytest.raises(ConfigurationError, match='consumer.http_secrets .*or consumer.http_auth = "none"'):
        receiving_router(app.registry, endpoint.engine, "auth-group")
    open_endpoint = endpoint.client(ConsumerSettings(http_auth=HttpAuth.NONE))
    event = Event(type="test.applied", key="n1", payload={"seq": 0})
    response = open_endpoint.post(PATH, content=body(event))
    assert (response.status_code, response.json()["status"]) == (200, "applied")


def test_the_http_publisher_signs_and_its_events_are_applied(endpoint: Endpoint) -> None:
    receiver = FastAPI()
    rotating = ConsumerSettings(http_secrets=(SecretStr(OLD_SECRET), SecretStr(SECRET)))
    receiver.include_router(receiving_router(app.registry, endpoint.engine, "auth-group", settings=rotating))
    (port,) = free_ports(1)
    events = [Event(type="test.applied", key="p1", payload={"seq": n}) for n in range(2)]
    with serving(receiver, port) as url:
        settings = KafkaguardSettings(
            database_url=endpoint.db.url,
            publish={"default_mode": "http", "http_default_endpoint": url + PATH, "http_secrets": [SECRET]},
        )
        publisher = Publisher(settings)
        unsigned = Publisher(settings.model_copy(update={"publish": settings.publish.model_copy(
            update={"http_auth": HttpAuth.NONE})}))  # fmt: skip
        try:
            with Session(endpoint.engine) as session, session.begin():
                assert publisher.publish(session, events[0]) is PublishOutcome.PUBLISHED
            with Session(endpoint.engine) as session, session.begin():
                assert unsigned.publish(session, events[1]) is PublishOutcome.DEAD_LETTERED  # 401: a 4xx
        finally:
            publisher.close()
            unsigned.close()
    assert rows(endpoint.db.conninfo, "SELECT event_id, seq FROM effects") == [(events[0].event_id, 0)]
    dead = rows(endpoint.db.conninfo, "SELECT event_id, last_error_message FROM kafka_publisher_dead_letters")
    assert [d[0] for d in dead] == [events[1].event_id] and "HTTP 401" in dead[0][1]
