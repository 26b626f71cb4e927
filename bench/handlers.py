"""The bench consumer's handler registries (``python -m kafkaguard consume bench.handlers:registry``).

``per_event_registry``: a per-event handler for ``bench.changed`` inserting each event into
``bench_applied`` with one INSERT in the inbox transaction — what the latency and RSS parts run
under the consumer's default settings (the path most users run). ``registry``: the same effect as a
batch handler (one executemany per run of events), for the batch-mode rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from bench.consumer_throughput import EVENT_TYPE, applied, insert_rows, row_of
from kafkaguard.consumer.registry import BatchContext, HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

INSERT_APPLIED = insert(applied)  # built once; the row goes as parameters (see consumer_throughput)
registry = HandlerRegistry()
per_event_registry = HandlerRegistry()


@registry.batch_handler(EVENT_TYPE)
def apply_events(events: list[Event], ctx: BatchContext[Any]) -> None:
    insert_rows(applied, events, ctx)


@per_event_registry.handler(EVENT_TYPE)
def apply_event(event: Event, ctx: HandlerContext[Any]) -> None:
    ctx.session.execute(INSERT_APPLIED, row_of(event))
