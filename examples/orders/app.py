"""The order service (FastAPI): ``POST /orders`` and ``GET /orders/{id}``.

Guarantee (the note's e-4): the order, its items and its ``order.created`` outbox row commit in ONE
transaction — all or nothing — so an event is never lost (the relay publishes every committed row)
and never phantom (a rolled-back order leaves no row). Bad input is refused with 4xx before any write.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path
from sqlalchemy.ext.asyncio import async_sessionmaker

from examples.orders.config import OrdersSettings
from examples.orders.events import order_created
from examples.orders.models import Order, OrderItem
from examples.orders.schemas import BIGINT_MAX, OrderCreate, OrderOut
from kafkaguard import add_event_async, create_async_engine

OrderId = Annotated[int, Path(gt=0, le=BIGINT_MAX)]


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    engine = create_async_engine(url=settings.database_url, schema=settings.schema_name, pool_size=10)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(title="order service", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/orders", status_code=201)
    async def create_order(body: OrderCreate) -> OrderOut:
        async with sessions() as db, db.begin():
            items = [OrderItem(sku=i.sku, quantity=i.quantity, unit_price_cents=i.unit_price_cents) for i in body.items]
            total = sum(i.quantity * i.unit_price_cents for i in body.items)
            order = Order(customer_id=body.customer_id, status="created", total_cents=total, items=items)
            db.add(order)
            await db.flush()
            event = order_created(order)
            await add_event_async(db, event)
        return OrderOut(**_order(order), event_id=str(event.event_id))

    @app.get("/orders/{order_id}")
    async def read_order(order_id: OrderId) -> OrderOut:
        async with sessions() as db:
            order = await db.get(Order, order_id)
            if order is None:
                raise HTTPException(404, detail={"error": "order_not_found", "order_id": order_id})
            return OrderOut(**_order(order))

    return app


def _order(order: Order) -> dict[str, Any]:
    items = [{"sku": i.sku, "quantity": i.quantity, "unit_price_cents": i.unit_price_cents} for i in order.items]
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status,
        "total_cents": order.total_cents,
        "created_at": order.created_at,
        "items": items,
    }
