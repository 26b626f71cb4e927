"""The metrics of issue 19: last relay success, store outages per component, id conflicts, event age,
restore runs; and each process's registry holding its own parts' series only."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.envelope import Event
from kafkaguard.metrics.consumer_hook import outcome_counter, retry_counter, store_outage_counter
from kafkaguard.metrics.registry import Metrics
from kafkaguard.metrics.relay_hook import RelayMetrics
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.relay.worker import Relay
from kafkaguard.restore.report import RunReport
from kafkaguard.testing import MemoryOutbox, MemoryProducer
from kafkaguard.transports.ports import TopicsExist


def _families(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    body = generate_latest(metrics.registry).decode()
    return {
        f.name: [(s.labels, s.value) for s in f.samples if not s.name.endswith("_created")]
        for f in text_string_to_metric_families(body)
    }


def test_each_part_serves_its_own_series_and_its_own_store_outage_component() -> None:
    for part in ("relay", "consumer", "restore"):
        families = _families(Metrics(parts=frozenset({part})))
        assert families["kafkaguard_store_outages"] == [({"component": part}, 0.0)]
        others = {"relay", "consumer", "restore"} - {part}
        assert not [n for n in families if any(n.startswith(f"kafkaguard_{o}_") for o in others)], part
    relay = _families(Metrics(parts=frozenset({"relay"})))
    assert sorted(labels["kind"] for labels, _ in relay["kafkaguard_relay_errors"]) == ["database", "kafka"]
    assert relay["kafkaguard_relay_last_success_timestamp_seconds"] == [({}, 0.0)]


def test_a_running_relay_reports_success_also_when_idle_and_outages_of_its_store() -> None:
    metrics = Metrics(parts=frozenset({"relay"}))
    relay = Relay(
        outbox=MemoryOutbox(),
        producer=MemoryProducer(),
        topics=TopicsExist(),
        for_aggregate=lambda agg: f"outbox.event.{agg}",
        settings=RelaySettings(poll_interval=0.05),
        hook=RelayMetrics(metrics),
    )
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    before = time.time()
    thread.start()
    try:
        deadline = time.monotonic() + 10
        sample = metrics.registry.get_sample_value
        while (sample("kafkaguard_relay_last_success_timestamp_seconds") or 0) < before:
            assert time.monotonic() < deadline, "the idle relay never reported a successful round"
            stop.wait(0.01)
    finally:
        stop.set()
        thread.join(10)
    assert before <= (sample("kafkaguard_relay_last_success_timestamp_seconds") or 0) <= time.time()
    RelayMetrics(metrics).error("database")
    RelayMetrics(metrics).error("kafka")
    assert sample("kafkaguard_store_outages_total", {"component": "relay"}) == 1
    assert sample("kafkaguard_relay_errors_total", {"kind": "kafka"}) == 1


def _record(offset: int, age: float | None = None) -> Record:
    event = Event(type="order.created", key="k", payload={})
    ts = datetime.now(UTC) - timedelta(seconds=age) if age is not None else None
    return Record("t", 0, offset, b"k", event.payload_bytes(), list(event.kafka_headers()), ts)


def test_consumer_hooks_count_id_conflicts_retries_outages_and_the_age_of_applied_events() -> None:
    metrics = Metrics(parts=frozenset({"consumer"}))
    count = outcome_counter(metrics, "g")
    sample = metrics.registry.get_sample_value
    for name in ("duplicates", "parked", "id_conflicts"):
        assert sample(f"kafkaguard_consumer_{name}_total", {"group": "g"}) == 0  # there from the start
    count(_record(0, age=120.0), Outcome.APPLIED)
    count(_record(1), Outcome.ID_CONFLICT)
    count(_record(2), Outcome.ID_CONFLICT)
    retry_counter(metrics, "g")("order.created")
    outage = store_outage_counter(metrics)
    outage()
    outage()
    assert sample("kafkaguard_consumer_id_conflicts_total", {"group": "g"}) == 2
    assert sample("kafkaguard_consumer_applied_total", {"group": "g", "type": "order.created"}) == 1
    assert sample("kafkaguard_consumer_retries_total", {"group": "g", "type": "order.created"}) == 1
    assert sample("kafkaguard_store_outages_total", {"component": "consumer"}) == 2
    age = {"group": "g"}
    assert sample("kafkaguard_consumer_event_age_seconds_count", age) == 1
    assert sample("kafkaguard_consumer_event_age_seconds_bucket", {**age, "le": "60.0"}) == 0
    assert sample("kafkaguard_consumer_event_age_seconds_bucket", {**age, "le": "300.0"}) == 1


def test_restore_runs_count_outcomes_or_an_outage() -> None:
    metrics = Metrics(parts=frozenset({"restore"}))
    metrics.restore_store("publisher")
    sample = metrics.registry.get_sample_value
    assert sample("kafkaguard_restore_outcomes_total", {"store": "publisher", "outcome": "failed"}) == 0
    assert sample("kafkaguard_restore_outcomes_total", {"store": "listener", "outcome": "failed"}) is None
    metrics.restore_run("publisher", 0.2, RunReport(restored=3, retried=1))
    metrics.restore_run("publisher", 5.0, None)
    assert sample("kafkaguard_restore_outcomes_total", {"store": "publisher", "outcome": "restored"}) == 3
    assert sample("kafkaguard_restore_outcomes_total", {"store": "publisher", "outcome": "retried"}) == 1
    assert sample("kafkaguard_restore_run_seconds_count", {"store": "publisher"}) == 2
    assert sample("kafkaguard_store_outages_total", {"component": "restore"}) == 1
    last = sample("kafkaguard_restore_last_run_timestamp_seconds", {"store": "publisher"})
    assert last is not None and abs(last - time.time()) < 60


def test_the_lag_gauge_drops_partitions_that_were_revoked() -> None:
    from kafkaguard.metrics.consumer_hook import lag_reporter

    metrics = Metrics(parts=frozenset({"consumer"}))
    lags = {("t", 0): 5, ("t", 1): 7}
    tick = lag_reporter(metrics, "g", lambda: dict(lags), every=0.0)
    tick()
    sample = metrics.registry.get_sample_value
    assert sample("kafkaguard_consumer_lag", {"group": "g", "topic": "t", "partition": "1"}) == 7
    del lags[("t", 1)]
    lags[("t", 0)] = 0
    tick()
    assert sample("kafkaguard_consumer_lag", {"group": "g", "topic": "t", "partition": "0"}) == 0
    assert sample("kafkaguard_consumer_lag", {"group": "g", "topic": "t", "partition": "1"}) is None


def test_a_restore_run_that_cannot_reach_the_database_counts_an_outage_and_still_raises() -> None:
    import pytest
    from sqlalchemy.exc import OperationalError

    from kafkaguard.cli.restore import _measured

    metrics = Metrics(parts=frozenset({"restore"}))

    def down() -> RunReport:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    with pytest.raises(OperationalError):
        _measured("listener", metrics, down)
    assert _measured("listener", metrics, lambda: RunReport(failed=2)).failed == 2
    sample = metrics.registry.get_sample_value
    assert sample("kafkaguard_store_outages_total", {"component": "restore"}) == 1
    assert sample("kafkaguard_restore_outcomes_total", {"store": "listener", "outcome": "failed"}) == 2
    assert sample("kafkaguard_restore_run_seconds_count", {"store": "listener"}) == 2
