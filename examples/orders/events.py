"""The order service's event: ``order.created``, keyed by the order id (the note's e-3)."""

from __future__ import annotations

from examples.orders.config import ORDER_AGGREGATE
from examples.orders.models import Order
from kafkaguard import Event


def order_created(order: Order) -> Event:
    """The event of a new order: Kafka key = order id, so one order's events stay in one partition, in order."""
    return Event(
        type="order.created",
        key=str(order.id),
        aggregate_type=ORDER_AGGREGATE,
        payload={
            "order_id": order.id,
            "customer_id": order.customer_id,
            "total_cents": order.total_cents,
            "items": [
                {"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in order.items
            ],
        },
    )
