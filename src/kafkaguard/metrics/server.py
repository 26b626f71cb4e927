"""Serve ``/metrics`` over HTTP on loopback (by default) from a background thread."""

from __future__ import annotations

from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from sqlalchemy import Engine

from kafkaguard.metrics.db_collector import DatabaseCollector
from kafkaguard.metrics.registry import Metrics


def serve_metrics(metrics: Metrics, port: int, *, addr: str = "127.0.0.1", engine: Engine | None = None) -> WSGIServer:
    """Start serving ``metrics`` (plus database gauges when ``engine`` is given) on ``addr:port``.

    Returns the server; call ``shutdown()`` to stop it. Binds to loopback unless told otherwise.
    """
    if engine is not None:
        metrics.registry.register(DatabaseCollector(engine))
    server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return server
