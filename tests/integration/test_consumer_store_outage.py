"""PostgreSQL stopped for 15 s under load: the consumer pauses, nothing is lost or applied twice."""

from __future__ import annotations

import threading

from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.db import migrate
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.metrics import Metrics
from kafkaguard.metrics.consumer_hook import store_outage_counter
from kafkaguard.testing.fixtures import TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import scalar, start_worker, wait_until


def test_postgres_down_15_seconds_under_load(
    kafka_bootstrap: str, topics: TopicFactory, dedicated_postgres: PostgresServer
) -> None:
    pg = dedicated_postgres
    migrate.upgrade(pg.url())
    app.create_tables(pg.conninfo())
    topic = topics("outage", partitions=3)
    events = app.make_events(3000, keys=40)
    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), store_backoff_max=2.0)
    count = lambda: int(scalar(pg.conninfo(), "SELECT count(*) FROM effects"))  # noqa: E731
    app.produce(kafka_bootstrap, topic, events[:1500])
    w = start_worker(kafka_bootstrap, pg.url(), None, app.registry, settings)
    metrics = Metrics(parts=frozenset({"consumer"}))
    w.worker.on_store_outage = store_outage_counter(metrics)

    def outages() -> float:
        return metrics.registry.get_sample_value("kafkaguard_store_outages_total", {"component": "consumer"}) or 0.0

    producer = threading.Thread(target=app.produce, args=(kafka_bootstrap, topic, events[1500:]))
    try:
        wait_until(lambda: count() >= 200, 60, "load before the outage")
        producer.start()  # more load arrives while the database is down
        pg.stop()
        stopped_at = threading.Event()
        stopped_at.wait(15)  # the fault's duration, not a synchronisation
        assert w.worker.stats["store_outages"] == 0  # counted when an outage ends
        assert outages() >= 2  # the metric counts while it lasts: the pausing failure, then failed probes
        assert w.thread.is_alive()
        pg.start()
        wait_until(lambda: count() >= len(events), 120, "every event after the outage")
        producer.join(30)
    finally:
        w.stop()
    assert w.worker.stats["store_outages"] >= 1
    assert count() == len(events)
    assert scalar(pg.conninfo(), "SELECT count(DISTINCT event_id) FROM effects") == len(events)
    assert scalar(pg.conninfo(), "SELECT count(*) FROM kafka_listener_dead_letters") == 0
    bad_order = scalar(
        pg.conninfo(),
        "SELECT count(*) FROM (SELECT seq - lag(seq) OVER (PARTITION BY key ORDER BY id) AS d FROM effects) x "
        "WHERE d <> 1",
    )
    assert bad_order == 0
