"""``uvicorn examples.orders.main:app``: the order service with settings from ``ORDERS_*``."""

from examples.orders.app import create_app

app = create_app()
