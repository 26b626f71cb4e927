"""PostgreSQL stopped under a running relay: its store-outage counter grows and its last-success time
stands still while the database is away, and moves again (events published) once it is back."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from kafkaguard.db import migrate
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.envelope import Event
from kafkaguard.metrics import Metrics
from kafkaguard.metrics.relay_hook import RelayMetrics
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.stores.outbox import add_events
from kafkaguard.topics import topic_for
from kafkaguard.transports.kafka_topics import TopicRegistry
from tests.integration.relay_helpers import wait_until


def test_relay_metrics_show_a_postgres_outage(kafka_bootstrap: str, dedicated_postgres: PostgresServer) -> None:
    pg = dedicated_postgres
    migrate.upgrade(pg.url())
    metrics = Metrics(parts=frozenset({"relay"}))
    sample = metrics.registry.get_sample_value
    relay = Relay.for_database(
        conninfo=pg.conninfo(),
        bootstrap=kafka_bootstrap,
        settings=RelaySettings(poll_interval=0.2, max_backoff=1.0),
        topics=TopicRegistry(kafka_bootstrap, partitions=1),
        for_aggregate=topic_for,
        name=f"outage-relay-{uuid.uuid4().hex[:4]}",
        hook=RelayMetrics(metrics),
    )
    agg = f"ro{uuid.uuid4().hex[:6]}"
    topic = topic_for(agg)

    def last_success() -> float:
        return sample("kafkaguard_relay_last_success_timestamp_seconds") or 0.0

    def outages() -> float:
        return sample("kafkaguard_store_outages_total", {"component": "relay"}) or 0.0

    def published() -> float:
        return sample("kafkaguard_relay_published_total", {"topic": topic}) or 0.0

    def add(n: int) -> None:
        from sqlalchemy import create_engine

        engine = create_engine(pg.url())
        with engine.begin() as conn:
            add_events(conn, [Event(type="t.x", key=f"k{i}", payload={}, aggregate_type=agg) for i in range(n)])
        engine.dispose()

    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        started = time.time()
        wait_until(lambda: last_success() >= started, 30, "the idle relay's first successful round")
        assert outages() == 0
        pg.stop()
        down_at = time.time()
        wait_until(lambda: outages() >= 2, 30, "store outages counted while PostgreSQL is down")
        frozen = last_success()
        assert frozen <= down_at + 1  # no round succeeded while the database was away
        pg.start()
        wait_until(lambda: last_success() > frozen, 60, "a successful round after PostgreSQL is back")
        add(5)
        wait_until(lambda: published() == 5, 60, "the events written after the outage to be published")
    finally:
        stop.set()
        thread.join(30)
    with psycopg.connect(pg.conninfo()) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()
    assert row is not None and row[0] == 0
