"""faststream-outbox's relay process: ``python -m bench.peer_faststream_relay URL SCHEMA BOOTSTRAP TOPIC``.

Its README's "outbox relay to Kafka" quick start, with the subscriber's default settings and the
durable producer settings (``acks="all"``, idempotence). Creates its table in ``SCHEMA``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from faststream import Context, FastStream
from faststream.kafka import KafkaBroker, KafkaResponse
from faststream_outbox import OutboxBroker, make_outbox_table
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from bench.peer_faststream import QUEUE, TABLE


async def main(url: str, schema: str, bootstrap: str, topic: str) -> None:
    metadata = MetaData()
    table = make_outbox_table(metadata, table_name=TABLE)
    engine = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    broker_outbox = OutboxBroker(engine, outbox_table=table)
    broker_kafka = KafkaBroker(bootstrap, acks="all", enable_idempotence=True)
    publisher = broker_kafka.publisher(topic)

    @publisher
    @broker_outbox.subscriber(QUEUE)
    async def relay(body: dict[str, Any], message: Any = Context()) -> KafkaResponse:  # noqa: B008 - FastStream DI
        return KafkaResponse(body, key=str(message.headers["key"]).encode())

    app = FastStream(broker_outbox, on_startup=[broker_kafka.connect])
    await app.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
