"""``python -m examples.orders.tables``: create the order service's tables (``ORDERS_*`` settings).

Run after ``kafkaguard db upgrade --schema orders`` (kafkaguard's tables). Safe to run again.
"""

from __future__ import annotations

from examples.orders.config import OrdersSettings
from examples.orders.models import Base
from kafkaguard import create_engine


def main() -> None:
    settings = OrdersSettings()
    engine = create_engine(url=settings.database_url, schema=settings.schema_name)
    Base.metadata.create_all(engine)
    engine.dispose()
    print(f"tables of schema {settings.schema_name}: {', '.join(sorted(Base.metadata.tables))}")


if __name__ == "__main__":
    main()
