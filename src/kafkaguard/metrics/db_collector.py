"""Gauges read from the database when Prometheus scrapes: backlog, dead letters, parked keys.

Read at scrape time (not counted in memory), so they agree with the database after any crash or
restart and across worker instances. Each scrape runs a few aggregate queries with a statement
timeout; a failing scrape reports ``kafkaguard_db_up 0`` instead of raising.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from kafkaguard.db import columns as C

log = logging.getLogger(__name__)

_BACKLOG = f"""
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM {C.OUTBOX} WHERE published_at IS NULL
"""  # noqa: S608 - constant table names
_PUBLISHER_DL = f"""
SELECT status, coalesce(last_error_class, '-'), count(*) FROM {C.PUBLISHER_DEAD_LETTERS} GROUP BY 1, 2
"""  # noqa: S608
_LISTENER_DL = f"""
SELECT status, coalesce(error_class, reason), count(*) FROM {C.LISTENER_DEAD_LETTERS} GROUP BY 1, 2
"""  # noqa: S608
_PARKED_KEYS = f"""
SELECT count(*) FROM (SELECT DISTINCT consumer_group, key FROM {C.LISTENER_DEAD_LETTERS} WHERE status = 'parked') k
"""  # noqa: S608


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
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT set_config('statement_timeout', :t, true)"), {"t": str(self.timeout_ms)})
                count, age = conn.execute(text(_BACKLOG)).one()
                backlog.add_metric([], float(count))
                oldest.add_metric([], float(age))
                for status, err, n in conn.execute(text(_PUBLISHER_DL)):
                    dead.add_metric(["publisher", status, err], float(n))
                for status, err, n in conn.execute(text(_LISTENER_DL)):
                    dead.add_metric(["listener", status, err], float(n))
                parked.add_metric([], float(conn.execute(text(_PARKED_KEYS)).scalar_one()))
        except SQLAlchemyError as exc:
            log.warning("metrics scrape could not read the database: %s", exc.__class__.__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield from (up, backlog, oldest, dead, parked)
