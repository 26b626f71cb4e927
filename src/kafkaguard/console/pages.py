"""The console's read-only pages: overview, failure groups, dead letters (keyset pages), one record, audit log."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from kafkaguard.console import audit, queries
from kafkaguard.console.charts import arrivals_chart
from kafkaguard.console.context import Console
from kafkaguard.console.forms import FormError, query_of, store_of
from kafkaguard.console.lag import read_lag
from kafkaguard.console.redact import redact
from kafkaguard.stores.gauges import read_gauges

SERVER_TIMING = "Server-Timing"


def _fields(request: Request) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        fields.setdefault(k, []).append(v)
    return fields


def _timed(response: HTMLResponse, started: float) -> HTMLResponse:
    response.headers[SERVER_TIMING] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def pretty(value: Any) -> str:
    """JSON for a page: indented, keys in their order, non-ASCII kept."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def router(console: Console) -> APIRouter:
    """The GET routes of ``console``."""
    r = APIRouter()

    @r.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        started = time.perf_counter()
        with console.engine.connect() as conn:
            gauges = read_gauges(conn, timeout_ms=5000)
            buckets = queries.hourly(conn)
            rate = queries.relay_rate(conn)
            backlogs = queries.backlog_per_schema(conn)
        chart = Markup(arrivals_chart(buckets))  # noqa: S704 - built from numbers and escaped labels
        page = console.render(
            request, "overview.html", gauges=gauges, chart=chart, rate=rate, buckets=buckets, backlogs=backlogs
        )
        return _timed(page, started)

    @r.get("/lag", response_class=HTMLResponse)
    def lag(request: Request) -> HTMLResponse:
        started = time.perf_counter()
        reading = read_lag(console.settings)
        return _timed(console.render(request, "lag.html", reading=reading), started)

    @r.get("/groups", response_class=HTMLResponse)
    def groups(request: Request) -> HTMLResponse:
        started = time.perf_counter()
        try:
            query = query_of(_fields(request))
        except FormError as exc:
            return console.render(request, "message.html", 400, title="Bad filter", message=str(exc))
        with console.engine.connect() as conn:
            found = queries.failure_groups(conn, query)
        return _timed(console.render(request, "groups.html", query=query, groups=found), started)

    @r.get("/dead-letters", response_class=HTMLResponse)
    def dead_letters(request: Request) -> HTMLResponse:
        started = time.perf_counter()
        try:
            query = query_of(_fields(request))
        except FormError as exc:
            return console.render(request, "message.html", 400, title="Bad filter", message=str(exc))
        with console.engine.connect() as conn:
            rows = queries.page(conn, query)
        more = len(rows) > queries.PAGE_SIZE
        rows = rows[: queries.PAGE_SIZE]
        next_after = rows[-1]["id"] if more and rows else None
        page = console.render(request, "dead_letters.html", query=query, rows=rows, next_after=next_after)
        return _timed(page, started)

    @r.get("/dead-letters/export.json", response_model=None)
    def export(request: Request) -> Response:
        """The filtered records as JSON (payload fields redacted as on the pages), 10,000 per request;
        the next ones with ``after=<last id>``."""
        try:
            query = query_of(_fields(request))
        except FormError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with console.engine.connect() as conn:
            found = queries.export_rows(conn, query)
        fields = console.settings.console.redact_fields
        out = []
        for row in found:
            raw = row.pop("payload")
            text = bytes(raw).decode("utf-8", errors="replace") if isinstance(raw, bytes | memoryview) else raw
            decoded = queries.decode_json_text(text)
            row["payload"] = redact(decoded, fields) if decoded is not None else (None if fields else text)
            row["headers"] = redact(queries.decode_json_text(row["headers"]) or {}, fields)
            out.append(row)
        body = json.dumps({"store": query.store.value, "records": out}, default=str, ensure_ascii=False)
        return Response(body, media_type="application/json")

    @r.get("/dead-letters/{store}/{record_id}", response_class=HTMLResponse)
    def detail(request: Request, store: str, record_id: int, hex: bool = False) -> HTMLResponse:
        try:
            which = store_of(store)
        except FormError as exc:
            return console.render(request, "message.html", 404, title="Not found", message=str(exc))
        with console.engine.connect() as conn:
            row = queries.record(conn, which, record_id)
            parked = queries.parked_behind(conn, row) if row and row["status"] in queries.OPEN else []
        if row is None:
            message = f"no {which.value} dead letter #{record_id}"
            return console.render(request, "message.html", 404, title="Not found", message=message)
        fields = console.settings.console.redact_fields
        payload = queries.decode_json_text(row["payload_text"])
        shown = pretty(redact(payload, fields)) if payload is not None else (row["payload_text"] or "")
        if payload is None and fields:
            shown = "[not JSON: hidden, since console.redact_fields is set]"
        headers = redact(row.get("headers") or {}, fields)
        page = console.render(
            request, "detail.html", store=which.value, row=row, payload=shown, headers=pretty(headers),
            history=pretty(row.get("history") or []), parked=parked, show_hex=hex and not fields,
            hex_hidden=bool(fields), traceparent=(row.get("headers") or {}).get("traceparent"),
            edit_payload=pretty(payload) if payload is not None and not fields else "",
        )  # fmt: skip
        return page

    @r.get("/audit", response_class=HTMLResponse)
    def audit_log(request: Request, before: int | None = None) -> HTMLResponse:
        with console.engine.connect() as conn:
            rows = audit.recent(conn, before=before)
        return console.render(request, "audit.html", rows=rows)

    return r
