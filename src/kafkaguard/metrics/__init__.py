"""Prometheus metrics: counters the workers update, and gauges read from the database at scrape time."""

from kafkaguard.metrics.registry import Metrics
from kafkaguard.metrics.server import serve_metrics

__all__ = ["Metrics", "serve_metrics"]
