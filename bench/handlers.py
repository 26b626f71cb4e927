"""The bench consumer's handler registry (``python -m kafkaguard consume bench.handlers:registry``).

One handler for ``bench.changed``: insert (event id, key, payload) into ``bench_applied`` in the
inbox transaction. ``BENCH_LATENCY_FILE``, when set, makes the process also note, per applied
event, the time its effect committed (see :mod:`bench.latency`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from bench.consumer_throughput import EVENT_TYPE, applied
from kafkaguard.consumer.registry import HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

registry = HandlerRegistry()


@registry.handler(EVENT_TYPE)
def apply_event(event: Event, ctx: HandlerContext[Any]) -> None:
    ctx.session.execute(insert(applied).values(event_id=event.event_id, key=event.key, payload=event.payload))
