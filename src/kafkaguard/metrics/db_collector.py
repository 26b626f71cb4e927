"""Gauges read from the database when Prometheus scrapes: backlog, dead letters, parked keys, the
oldest pending dead letter's age.

Read at scrape time (not counted in memory), so they agree with the database after any crash or
restart and across worker instances. Each scrape runs the aggregate queries of
:func:`kafkaguard.stores.gauges.read_gauges` with a statement timeout; a failing scrape reports
``kafkaguard_db_up 0`` instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from kafkaguard.stores.gauges import read_gauges

log = logging.getLogger(__name__)


class DatabaseCollector(Collector):
    """Collects kafkaguard's database gauges from ``engine`` on each scrape."""

    def __init__(self, engine: Engine, *, timeout_ms: int = 5000) -> None:
        self.engine = engine
        self.timeout_ms = timeout_ms

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # collected lazily; describing would query the database at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("kafkaguard_db_up", "1 when the last scrape could read the database.")
        backlog = GaugeMetricFamily("kafkaguard_outbox_backlog", "Outbox rows not yet published.")
        oldest = GaugeMetricFamily(
            "kafkaguard_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0 when empty)."
        )
        dead = GaugeMetricFamily(
            "kafkaguard_dead_letters", "Dead letters by store, status and error class.",
            labels=["store", "status", "error_class"],
        )  # fmt: skip
        parked = GaugeMetricFamily("kafkaguard_parked_keys", "Keys with events parked behind a dead letter.")
        pending = GaugeMetricFamily(
            "kafkaguard_dead_letter_oldest_pending_age_seconds",
            "Age of the oldest pending dead letter, per store (0 when none is pending).",
            labels=["store"],
        )
        try:
            with self.engine.connect() as conn:
                read = read_gauges(conn, timeout_ms=self.timeout_ms)
        except SQLAlchemyError as exc:
            log.warning("metrics scrape could not read the database: %s", exc.__class__.__name__)
            up.add_metric([], 0.0)
            yield up
            return
        backlog.add_metric([], float(read.backlog))
        oldest.add_metric([], read.oldest_age_seconds)
        for store, status, error_class, n in read.dead_letters:
            dead.add_metric([store, status, error_class], float(n))
        parked.add_metric([], float(read.parked_keys))
        for store, age in sorted(read.oldest_pending_age_seconds.items()):
            pending.add_metric([store], age)
        up.add_metric([], 1.0)
        yield from (up, backlog, oldest, dead, parked, pending)
