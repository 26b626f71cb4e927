"""Every metric the shipped dashboard and alerting rules use is served by real workers.

A relay, a consumer and a publisher restore worker run as ``kafkaguard`` processes over the session's
Kafka and PostgreSQL, with traffic that reaches every path the dashboard shows: events relayed and
applied, a broken key dead-lettered and its later event parked, a publisher dead letter restored.
Their ``/metrics`` are scraped over HTTP until every name the dashboard's and the rules'
expressions select is exported (a declared family counts: a labelled counter before its first
increment has no series yet), and then every one of them but the rare ones has a series. The rules
file passes the schema check, and ``promtool check rules`` when the dev tooling can build promtool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack.process import free_ports
from kafkaguard.devstack.stack import default_run_dir
from kafkaguard.devstack.tools import find_promtool
from kafkaguard.envelope import Event
from kafkaguard.stores.outbox import add_events
from kafkaguard.testing.fixtures import TestDatabase
from tests.integration import consumer_app
from tests.integration.consumer_helpers import REPO, scalar, wait_until
from tests.integration.dead_letter_rows import insert_publisher_dead_letter
from tests.observability import (
    RULES,
    dashboard_exprs,
    load_dashboard,
    load_rules,
    metric_names,
    rule_exprs,
    rules_problems,
    sample_names,
)

# Series that appear only on a rare event the pipeline below does not cause: a relay dead letter
# (Kafka refusing a message for good). Their families are still required to be exported.
RARE = frozenset({"kafkaguard_publisher_dead_lettered_total"})


class Scrape:
    """One worker's ``/metrics``: the series names it declares and those it has series for."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.declared: set[str] = set()
        self.with_samples: set[str] = set()

    def refresh(self) -> bool:
        try:
            body = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return False
        declared: set[str] = set()
        with_samples: set[str] = set()
        for family in text_string_to_metric_families(body):
            declared |= sample_names(family.name, family.type)
            with_samples |= {s.name for s in family.samples}
        self.declared, self.with_samples = declared, with_samples
        return True


@pytest.fixture
def workers(
    migrated_database: TestDatabase, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[dict[str, Scrape], str]]:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    agg = f"o{uuid.uuid4().hex[:6]}"
    topic = f"outbox.event.{agg}"
    engine = sync_engine(db.server.url(), schema=db.schema)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO broken_keys (key) VALUES ('broken')"))
        events = [Event(type="test.applied", key=f"k{i % 3}", payload={"seq": i // 3}, aggregate_type=agg)
                  for i in range(12)]  # fmt: skip
        # The broken key's first event is dead-lettered, its second parked behind it.
        events += [Event(type="test.applied", key="broken", payload={"seq": s}, aggregate_type=agg) for s in (0, 1)]
        add_events(conn, events)
        restored = Event(type="test.applied", key="from-dl", payload={"seq": 0}, aggregate_type=agg)
        insert_publisher_dead_letter(conn, restored, topic, source="outbox")
    engine.dispose()
    relay_port, consumer_port, restore_port = free_ports(3)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),  # this tree's code, not an installed one
        "KAFKAGUARD_DATABASE_URL": db.server.url(),
        "KAFKAGUARD_DB_SCHEMA": db.schema,
        "KAFKAGUARD_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    kg = [sys.executable, "-m", "kafkaguard"]
    commands = {
        "relay": [*kg, "relay", "--metrics-port", str(relay_port)],
        "consumer": [*kg, "consume", "tests.integration.consumer_app:registry", "--group", consumer_app.new_group(),
                     "--topic", topic, "--metrics-port", str(consumer_port)],
        "restore": [*kg, "restore", "publisher", "--every", "1s", "--metrics-port", str(restore_port)],
    }  # fmt: skip
    procs = {}
    for name, argv in commands.items():
        log = (tmp_path / f"{name}.log").open("w")
        procs[name] = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        scrapes = {"relay": Scrape(relay_port), "consumer": Scrape(consumer_port), "restore": Scrape(restore_port)}
        yield scrapes, db.conninfo
    finally:
        for p in procs.values():
            p.terminate()
        for name, p in procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            sys.stderr.write(f"--- {name} log ---\n{(tmp_path / f'{name}.log').read_text()[-3000:]}\n")


def test_every_metric_of_the_dashboard_and_rules_is_served_by_the_workers(
    workers: tuple[dict[str, Scrape], str],
) -> None:
    scrapes, conninfo = workers
    used = metric_names(dashboard_exprs(load_dashboard())) | metric_names(rule_exprs(load_rules()))
    assert len(used) >= 20  # the regex found the names (not an empty set passing vacuously)

    def missing(attribute: str, ignore: frozenset[str] = frozenset()) -> set[str]:
        for scrape in scrapes.values():
            scrape.refresh()
        served: set[str] = set().union(*(getattr(s, attribute) for s in scrapes.values()))
        return used - served - ignore

    def settled() -> bool:
        # 12 events and the restored dead letter applied, the broken key held back.
        applied = scalar(conninfo, "SELECT count(*) FROM effects") == 13
        return applied and not missing("declared") and not missing("with_samples", RARE)

    started = time.monotonic()
    try:
        wait_until(settled, 120, "the traffic applied and every metric the dashboard and rules use served", 1.0)
    finally:
        sys.stderr.write(f"metrics served after {time.monotonic() - started:.1f} s\n")
        sys.stderr.write(f"still missing: {missing('declared')} / without series: {missing('with_samples', RARE)}\n")
    # Each worker serves its own part: no consumer or restore series on the relay, and so on.
    parts = {
        "relay": ("kafkaguard_relay_",),
        "consumer": ("kafkaguard_consumer_",),
        "restore": ("kafkaguard_restore_",),
    }
    for name, scrape in scrapes.items():
        foreign = [
            n for n in scrape.declared if n.startswith(tuple(p for k, v in parts.items() if k != name for p in v))
        ]
        assert foreign == [], f"the {name} serves another worker's metrics"
    # Store outages are counted per component, each worker its own (at 0 here).
    for name, scrape in scrapes.items():
        assert "kafkaguard_store_outages_total" in scrape.with_samples, name


def test_the_rules_file_is_valid() -> None:
    assert rules_problems(load_rules()) == []
    promtool = find_promtool(default_run_dir())
    if promtool is None:
        pytest.skip("promtool is not built (`make promtool`: needs Go); the schema check above ran")
    result = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
