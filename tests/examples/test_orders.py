"""The order service: API on the real database, and one order through the real relay and consumer.

Every test runs on PostgreSQL and on MariaDB (the order note's own database: "the `outbox` table in
mysql"); the service's code is the same, one URL decides.

``POST /orders`` commits the order, its items and one outbox row (key = order id) together; bad input
writes nothing. The relay (``python -m kafkaguard relay``) and the consumer apply the order into
``order_summaries`` exactly once, even when Kafka delivers its event twice.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from examples.orders.app import create_app
from examples.orders.config import OrdersSettings, kafkaguard_settings
from examples.orders.handlers import registry
from examples.orders.models import Base
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase, TestMariaDatabase, TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.integration.consumer_helpers import start_worker, wait_until

Db = TestDatabase | TestMariaDatabase

TABLES = ("orders", "order_items", "outbox", "order_summaries")
ITEMS = [
    {"sku": "book-1", "quantity": 2, "unit_price_cents": 1250},
    {"sku": "pen", "quantity": 1, "unit_price_cents": 99},
]
REPO = Path(__file__).resolve().parents[2]


def service_url(db: Db) -> str:
    """The URL the service is given: PostgreSQL's server URL (the schema apart), MariaDB's database URL."""
    return db.url if isinstance(db, TestMariaDatabase) else db.server.url()


@pytest.fixture
def engine(store_database: Db) -> Iterator[Engine]:
    """An engine on the test's database (PostgreSQL or MariaDB), for the assertions' reads."""
    engine = sync_engine(service_url(store_database), schema=store_database.schema)
    yield engine
    engine.dispose()


def column(engine: Engine, query: str, **params: Any) -> list[Any]:
    """The first column of ``query``'s rows (``:name`` parameters, portable SQL)."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text(query), params)]


def snapshot(engine: Engine, tables: tuple[str, ...]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables`` (ordered), to assert that a refused request wrote nothing."""
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))] for t in tables}


@pytest.fixture
def orders(store_database: Db, engine: Engine, kafka_bootstrap: str) -> OrdersSettings:
    Base.metadata.create_all(engine)
    return OrdersSettings(
        database_url=service_url(store_database),
        bootstrap_servers=kafka_bootstrap,
        schema_name=store_database.schema,
        summary_group=f"summaries-{store_database.schema}",
    )


@pytest.fixture
def client(orders: OrdersSettings) -> Iterator[TestClient]:
    with TestClient(create_app(orders)) as c:
        yield c


def test_order_items_and_outbox_row_commit_together(client: TestClient, engine: Engine) -> None:
    created = client.post("/orders", json={"customer_id": 42, "items": ITEMS})
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["total_cents"], len(order["items"])) == (2 * 1250 + 99, 2)
    with engine.connect() as conn:
        outbox = conn.execute(
            text("SELECT type, aggregateid, aggregatetype FROM outbox WHERE id = :id"), {"id": order["event_id"]}
        ).all()
    assert [tuple(r) for r in outbox] == [("order.created", str(order["id"]), "order")]  # keyed by the order id
    assert column(engine, "SELECT count(*) FROM order_items WHERE order_id = :o", o=order["id"]) == [2]
    read = client.get(f"/orders/{order['id']}")
    assert read.status_code == 200 and read.json()["items"] == order["items"]


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (b'{"customer_id": 1, "items": [', 422, "json_invalid"),
        (b'{"items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]}', 422, "missing"),
        (b'{"customer_id": 1}', 422, "missing"),
        (b'{"customer_id": 1, "items": []}', 422, "too_short"),
        (b'{"customer_id": "1", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]}', 422, "int_type"),
        (b'{"customer_id": 1, "items": [{"sku": "a", "quantity": 0, "unit_price_cents": 1}]}', 422, "greater_than"),
        (b'{"customer_id": 1, "items": [{"sku": "a", "quantity": 1.5, "unit_price_cents": 1}]}', 422, "int_type"),
        (b'{"customer_id": 1, "items": [{"sku": "a", "quantity": 1, "unit_price_cents": -1}]}', 422, "greater_than_equal"),  # noqa: E501
        (b'{"customer_id": 1, "items": [{"sku": "a b\\u0000", "quantity": 1, "unit_price_cents": 1}]}', 422, "pattern"),
        (b'{"customer_id": 1, "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1, "x": 1}]}', 422, "extra"),
        (b'{"customer_id": 1, "coupon": "X", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 1}]}', 422, "extra"),  # noqa: E501
    ],
)  # fmt: skip
def test_bad_orders_are_refused_and_write_nothing(
    client: TestClient, engine: Engine, raw: bytes, status: int, error: str
) -> None:
    assert client.post("/orders", json={"customer_id": 1, "items": ITEMS}).status_code == 201
    before = snapshot(engine, TABLES)
    response = client.post("/orders", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert any(error in e["type"] for e in response.json()["detail"]), response.text
    assert snapshot(engine, TABLES) == before


@pytest.mark.parametrize(("path", "status"), [("/orders/999999", 404), ("/orders/0", 422), ("/orders/x", 422),
                                              (f"/orders/{2**63}", 422)])  # fmt: skip
def test_unknown_or_bad_order_ids_are_4xx(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text


def test_order_reaches_the_projection_once_through_relay_and_consumer(
    client: TestClient, orders: OrdersSettings, store_database: Db, engine: Engine, topics: TopicFactory, tmp_path: Path
) -> None:
    topic = topics("order")
    db = store_database
    env = {**os.environ, "PYTHONPATH": str(REPO), "KAFKAGUARD_TOPICS__PATTERN": topics.prefix + ".{aggregate_type}"}
    relay_cmd = [sys.executable, "-m", "kafkaguard", "relay", "--url", db.url,
                 "--bootstrap-servers", orders.bootstrap_servers, "--poll-interval", "0.5"]  # fmt: skip
    kg = kafkaguard_settings(orders)
    consumer = start_worker(
        orders.bootstrap_servers, orders.database_url, orders.schema_name, registry,
        kg.consumer.model_copy(update={"topics": (topic,)}),
    )  # fmt: skip
    with (tmp_path / "relay.log").open("wb") as log:
        relay = subprocess.Popen(relay_cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        order = client.post("/orders", json={"customer_id": 7, "items": ITEMS}).json()
        wait_until(lambda: column(engine, "SELECT count(*) FROM order_summaries") == [1], 60, "the summary")
        wait_until(lambda: column(engine, "SELECT count(*) FROM outbox") == [0], 30, "the relay to clear its row")
        # Kafka delivers the event a second time (as after a relay crash between ack and delete).
        producer = DeliveryProducer(orders.bootstrap_servers, message_timeout=15)
        rows = column(engine, "SELECT event_id FROM order_summaries")
        assert [str(r) for r in rows] == [order["event_id"]]
        replay = order_created_again(order)
        producer.send(topic, replay.payload_bytes(), key=replay.key.encode(), headers=replay.kafka_headers())
        producer.close()
        wait_until(lambda: consumer.worker.stats["duplicate"] >= 1, 30, "the duplicate to be skipped")
    finally:
        relay.terminate()
        relay.wait(30)
        consumer.stop()
    with engine.connect() as conn:
        summary = conn.execute(text("SELECT order_id, item_count, total_cents FROM order_summaries")).all()
    assert [tuple(r) for r in summary] == [(order["id"], 3, 2 * 1250 + 99)]
    inbox = "SELECT count(*) FROM kafka_inbox WHERE consumer_group = :g"
    assert column(engine, inbox, g=orders.summary_group) == [1]
    assert column(engine, "SELECT count(*) FROM kafka_listener_dead_letters") == [0]


def order_created_again(order: dict[str, Any]) -> Event:
    """The same event (same event id) as the relay published for ``order``."""
    payload = {k: order[k] for k in ("customer_id", "total_cents", "items")} | {"order_id": order["id"]}
    return Event(
        type="order.created",
        key=str(order["id"]),
        aggregate_type="order",
        event_id=UUID(str(order["event_id"])),
        payload=payload,
    )
