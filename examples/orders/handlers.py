"""The order-event consumer: ``order.created`` becomes a row of ``order_summaries``.

    python -m kafkaguard consume examples.orders.handlers:registry --group order-summaries \
        --schema orders --topic outbox.event.order

Registered with kafkaguard's inbox (the default): the summary and the inbox row
``(group, event_id)`` commit in one transaction, so a redelivered event (relay crash after the ack,
consumer crash before the commit) is skipped — applied exactly once.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from examples.orders.events import OrderCreated
from examples.orders.models import OrderSummary
from kafkaguard import HandlerContext, HandlerRegistry

registry = HandlerRegistry()


@registry.handler("order.created", model=OrderCreated)
def summarise_order(order: OrderCreated, ctx: HandlerContext[Session]) -> None:
    """Insert the order's summary. A typed handler: the payload arrives validated as :class:`OrderCreated`
    (a payload it refuses is a permanent dead letter ``invalid_payload``); ``ctx.event`` is the envelope."""
    ctx.session.add(
        OrderSummary(
            order_id=order.order_id,
            customer_id=order.customer_id,
            item_count=sum(i.quantity for i in order.items),
            total_cents=order.total_cents,
            event_id=ctx.event.event_id,
        )
    )
