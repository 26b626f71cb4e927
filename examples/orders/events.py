"""The order service's event: ``order.created``, keyed by the order id (the note's e-3).

:class:`OrderCreated` is the payload's schema, shared by the producer (``Event(payload=model)``
stores it as JSON) and the consumer (``@registry.handler("order.created", model=OrderCreated)``
validates it back; a payload it refuses is dead-lettered at once with reason ``invalid_payload``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from examples.orders.config import ORDER_AGGREGATE
from examples.orders.models import Order
from kafkaguard import Event


class OrderedItem(BaseModel):
    model_config = ConfigDict(frozen=True)
    sku: str
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class OrderCreated(BaseModel):
    """The payload of ``order.created``."""

    model_config = ConfigDict(frozen=True)
    order_id: int = Field(gt=0)
    customer_id: int = Field(gt=0)
    total_cents: int = Field(ge=0)
    items: list[OrderedItem] = Field(min_length=1)


def order_created(order: Order) -> Event:
    """The event of a new order: Kafka key = order id, so one order's events stay in one partition, in order."""
    return Event(
        type="order.created",
        key=str(order.id),
        aggregate_type=ORDER_AGGREGATE,
        payload=OrderCreated(
            order_id=order.id,
            customer_id=order.customer_id,
            total_cents=order.total_cents,
            items=[
                OrderedItem(sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents) for i in order.items
            ],
        ),
    )
