"""Metrics scraped over HTTP match the database; cleanup deletes only what has expired."""

import threading

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.process import free_ports
from kafkaguard.envelope import Event
from kafkaguard.maintenance.cleanup import CleanupSettings, run_cleanup
from kafkaguard.metrics import Metrics, serve_metrics
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing.fixtures import TestDatabase
from tests.integration.dead_letter_rows import insert_publisher_dead_letter


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_scraped_metrics_match_the_database(migrated_database: TestDatabase) -> None:
    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    with engine.begin() as conn:
        add_events(conn, [Event(type="post.created", key=f"p{i}", payload={}) for i in range(7)])
        for i in range(3):
            insert_publisher_dead_letter(conn, Event(type="post.created", key=f"d{i}", payload={}), "t")
        conn.execute(text("UPDATE kafka_publisher_dead_letters SET status = 'failed' WHERE key = 'd0'"))
        # The oldest pending one an hour old; an older failed one does not count (only pending).
        conn.execute(
            text("UPDATE kafka_publisher_dead_letters SET created_at = now() - interval '1 hour' WHERE key = 'd1'")
        )
        conn.execute(
            text("UPDATE kafka_publisher_dead_letters SET created_at = now() - interval '3 hours' WHERE key = 'd0'")
        )
        for i, status in enumerate(["pending", "parked", "parked"]):
            conn.execute(
                text(
                    'INSERT INTO kafka_listener_dead_letters (consumer_group, topic, partition, "offset", key, '
                    "reason, error_class, status) VALUES ('g', 't', 0, :o, 'k1', 'handler_error', 'ValueError', :s)"
                ),
                {"o": i, "s": status},
            )
    metrics = Metrics()
    metrics.restore_outcomes.labels("publisher", "restored").inc(2)
    port = free_ports(1)[0]
    server = serve_metrics(metrics, port, engine=engine)
    try:
        got = scrape(port)
    finally:
        server.shutdown()
    with engine.connect() as conn:
        backlog = conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one()
    assert got[("kafkaguard_db_up", ())] == 1
    assert got[("kafkaguard_outbox_backlog", ())] == backlog == 7
    assert got[("kafkaguard_outbox_oldest_age_seconds", ())] >= 0
    dl = {k[1]: v for k, v in got.items() if k[0] == "kafkaguard_dead_letters"}
    assert dl[(("error_class", "KafkaException"), ("status", "pending"), ("store", "publisher"))] == 2
    assert dl[(("error_class", "KafkaException"), ("status", "failed"), ("store", "publisher"))] == 1
    assert dl[(("error_class", "ValueError"), ("status", "parked"), ("store", "listener"))] == 2
    assert got[("kafkaguard_parked_keys", ())] == 1
    pending_age = {k[1]: v for k, v in got.items() if k[0] == "kafkaguard_dead_letter_oldest_pending_age_seconds"}
    assert 3600 <= pending_age[(("store", "publisher"),)] < 3600 + 60
    assert 0 <= pending_age[(("store", "listener"),)] < 60
    assert got[("kafkaguard_restore_outcomes_total", (("outcome", "restored"), ("store", "publisher")))] == 2


def test_cleanup_deletes_only_expired_rows_in_batches(migrated_database: TestDatabase) -> None:
    engine = sync_engine(migrated_database.server.url(), schema=migrated_database.schema)
    with engine.begin() as conn:
        add_events(conn, [Event(type="post.created", key=f"p{i}", payload={}) for i in range(25)])
        conn.execute(text("UPDATE outbox SET published_at = now() - interval '2 days' WHERE aggregateid < 'p2'"))
        conn.execute(text("UPDATE outbox SET published_at = now() WHERE aggregateid >= 'p2' AND aggregateid < 'p3'"))
        for i in range(4):
            insert_publisher_dead_letter(conn, Event(type="post.created", key=f"d{i}", payload={}), "t")
        conn.execute(
            text(
                "UPDATE kafka_publisher_dead_letters SET status = 'restored', updated_at = now() - interval '40 days' "
                "WHERE key IN ('d0', 'd1')"
            )
        )
        conn.execute(text("UPDATE kafka_publisher_dead_letters SET updated_at = now() - interval '40 days'"))
        conn.execute(
            text("INSERT INTO kafka_inbox (consumer_group, event_id, processed_at) VALUES "
                 "('g', gen_random_uuid(), now() - interval '20 days'), ('g', gen_random_uuid(), now())")
        )  # fmt: skip
    before = {}
    with engine.connect() as conn:
        for t in ("outbox", "kafka_publisher_dead_letters", "kafka_inbox"):
            before[t] = conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()

    # A second instance running at the same time skips instead of competing.
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(run_cleanup(engine, CleanupSettings(batch_size=3))))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = [r for r in results if not r.skipped]
    assert len(done) >= 1
    deleted = {k: sum(r.deleted.get(k, 0) for r in done) for k in before}
    # p0, p1 and p10..p19 were published two days ago (12 rows), p2 and p20..p24 just now, the rest never.
    assert deleted == {"outbox": 12, "kafka_publisher_dead_letters": 2, "kafka_inbox": 1}
    with engine.connect() as conn:
        open_dl = conn.execute(text("SELECT count(*) FROM kafka_publisher_dead_letters WHERE status='pending'"))
        assert open_dl.scalar_one() == 2  # open dead letters are never deleted, however old
        assert conn.execute(text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one() == 25 - 12 - 6


def test_relay_and_consumer_workers_serve_metrics_matching_the_database(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    import os
    import subprocess
    import sys
    import uuid

    from tests.integration import consumer_app
    from tests.integration.consumer_helpers import REPO, scalar, wait_until

    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    agg = f"m{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    relay_port, consumer_port = free_ports(2)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),  # this tree's code, not an installed one
        "KAFKAGUARD_DATABASE_URL": db.server.url(),
        "KAFKAGUARD_DB_SCHEMA": db.schema,
        "KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    engine = sync_engine(db.server.url(), schema=db.schema)
    with engine.begin() as conn:  # relayed as test.applied: the consumer app's handler applies them
        add_events(conn, [Event(type="test.applied", key=f"k{i % 5}", payload={"seq": i // 5}, aggregate_type=agg)
                          for i in range(40)])  # fmt: skip
    group = consumer_app.new_group()
    procs = [
        subprocess.Popen([sys.executable, "-m", "kafkaguard", "relay", "--metrics-port", str(relay_port)],
                         env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([sys.executable, "-m", "kafkaguard", "consume", "tests.integration.consumer_app:registry",
                          "--group", group, "--topic", topic, "--metrics-port", str(consumer_port)],
                         env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip

    def published() -> float:
        try:
            return scrape(relay_port).get(("kafkaguard_relay_published_total", (("topic", topic),)), 0.0)
        except httpx.HTTPError:
            return 0.0

    def applied() -> float:
        try:
            key = ("kafkaguard_consumer_applied_total", (("group", group), ("type", "test.applied")))
            return scrape(consumer_port).get(key, 0.0)
        except httpx.HTTPError:
            return 0.0

    try:
        wait_until(lambda: published() == 40, 90, "the relay's counter to reach 40")
        wait_until(lambda: applied() == 40, 90, "the consumer's counter to reach 40")
        relay_view = scrape(relay_port)

        def lag_total() -> float | None:
            lags = [v for (name, _), v in scrape(consumer_port).items() if name == "kafkaguard_consumer_lag"]
            return sum(lags) if lags else None

        wait_until(lambda: lag_total() == 0, 30, "the consumer lag gauge to report 0 once caught up")
        consumer_view = scrape(consumer_port)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    assert scalar(db.conninfo, "SELECT count(*) FROM effects") == 40
    assert scalar(db.conninfo, "SELECT count(*) FROM kafka_inbox") == 40
    assert relay_view[("kafkaguard_outbox_backlog", ())] == scalar(db.conninfo, "SELECT count(*) FROM outbox") == 0
    assert relay_view[("kafkaguard_relay_event_age_seconds_count", ())] == 40
    # Each worker exposes its own metrics only: no relay histograms at zero on the consumer's /metrics.
    assert not [name for name, _ in consumer_view if name.startswith("kafkaguard_relay_")]
    assert not [name for name, _ in relay_view if name.startswith("kafkaguard_consumer_")]
