"""The order-event consumer: ``order.created`` becomes a row of ``order_summaries``.

    python -m kafkaguard consume examples.orders.handlers:registry --group order-summaries \
        --schema orders --topic outbox.event.order

Registered with kafkaguard's inbox (the default): the summary and the inbox row
``(group, event_id)`` commit in one transaction, so a redelivered event (relay crash after the ack,
consumer crash before the commit) is skipped — applied exactly once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from examples.orders.models import OrderSummary
from kafkaguard import Event, HandlerContext, HandlerRegistry

registry = HandlerRegistry()


@registry.handler("order.created")
def summarise_order(event: Event, ctx: HandlerContext[Session]) -> None:
    """Insert the order's summary (a missing field is a permanent error: KeyError → dead letter)."""
    payload = event.payload
    items = payload["items"]
    ctx.session.add(
        OrderSummary(
            order_id=int(payload["order_id"]),
            customer_id=int(payload["customer_id"]),
            item_count=sum(int(i["quantity"]) for i in items),
            total_cents=int(payload["total_cents"]),
            event_id=event.event_id,
        )
    )
