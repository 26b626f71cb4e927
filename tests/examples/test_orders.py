"""The order service: API on the real PostgreSQL, and one order through the real relay and consumer.

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

from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from tests.examples.dailyfeed_env import column, snapshot
from tests.integration.consumer_helpers import start_worker, wait_until

TABLES = ("orders", "order_items", "outbox", "order_summaries")
ITEMS = [
    {"sku": "book-1", "quantity": 2, "unit_price_cents": 1250},
    {"sku": "pen", "quantity": 1, "unit_price_cents": 99},
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def orders(migrated_database: TestDatabase, kafka_bootstrap: str) -> OrdersSettings:
    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    Base.metadata.create_all(engine)
    engine.dispose()
    return OrdersSettings(
        database_url=migrated_database.server.url(),
        bootstrap_servers=kafka_bootstrap,
        schema_name=migrated_database.schema,
        summary_group=f"summaries-{migrated_database.schema}",
    )


@pytest.fixture
def client(orders: OrdersSettings) -> Iterator[TestClient]:
    with TestClient(create_app(orders)) as c:
        yield c


def test_order_items_and_outbox_row_commit_together(client: TestClient, migrated_database: TestDatabase) -> None:
    created = client.post("/orders", json={"customer_id": 42, "items": ITEMS})
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["total_cents"], len(order["items"])) == (2 * 1250 + 99, 2)
    outbox = column(
        migrated_database.conninfo,
        "SELECT ARRAY[type, aggregateid, aggregatetype] FROM outbox WHERE id = %s",
        (order["event_id"],),
    )
    assert outbox == [["order.created", str(order["id"]), "order"]]  # keyed by the order id
    assert column(
        migrated_database.conninfo, "SELECT count(*) FROM order_items WHERE order_id = %s", (order["id"],)
    ) == [2]
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
    client: TestClient, migrated_database: TestDatabase, raw: bytes, status: int, error: str
) -> None:
    assert client.post("/orders", json={"customer_id": 1, "items": ITEMS}).status_code == 201
    before = snapshot(migrated_database.conninfo, TABLES)
    response = client.post("/orders", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert any(error in e["type"] for e in response.json()["detail"]), response.text
    assert snapshot(migrated_database.conninfo, TABLES) == before


@pytest.mark.parametrize(("path", "status"), [("/orders/999999", 404), ("/orders/0", 422), ("/orders/x", 422),
                                              (f"/orders/{2**63}", 422)])  # fmt: skip
def test_unknown_or_bad_order_ids_are_4xx(client: TestClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status, response.text


def test_order_reaches_the_projection_once_through_relay_and_consumer(
    client: TestClient, orders: OrdersSettings, migrated_database: TestDatabase, topics: TopicFactory, tmp_path: Path
) -> None:
    topic = topics("order")
    db = migrated_database
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
        wait_until(lambda: column(db.conninfo, "SELECT count(*) FROM order_summaries") == [1], 60, "the summary")
        wait_until(lambda: column(db.conninfo, "SELECT count(*) FROM outbox") == [0], 30, "the relay to clear its row")
        # Kafka delivers the event a second time (as after a relay crash between ack and delete).
        producer = DeliveryProducer(orders.bootstrap_servers, message_timeout=15)
        rows = column(db.conninfo, "SELECT event_id::text FROM order_summaries")
        assert rows == [order["event_id"]]
        replay = order_created_again(order)
        producer.send(topic, replay.payload_bytes(), key=replay.key.encode(), headers=replay.kafka_headers())
        producer.close()
        wait_until(lambda: consumer.worker.stats["duplicate"] >= 1, 30, "the duplicate to be skipped")
    finally:
        relay.terminate()
        relay.wait(30)
        consumer.stop()
    assert column(db.conninfo, "SELECT ARRAY[order_id, item_count, total_cents] FROM order_summaries") == [
        [order["id"], 3, 2 * 1250 + 99]
    ]
    inbox = "SELECT count(*) FROM kafka_inbox WHERE consumer_group = %s"
    assert column(db.conninfo, inbox, (orders.summary_group,)) == [1]
    assert column(db.conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == [0]


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
