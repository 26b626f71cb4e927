"""Settings of the order service (environment ``ORDERS_*``) and the kafkaguard settings it implies.

The order note's choices, made explicit here rather than inherited:

- events leave through the transactional outbox (note e-4), relayed to Kafka by ``kafkaguard relay``
  (or Debezium's Outbox Event Router);
- the Kafka key is the order id (note e-3), so one order's events keep their order;
- the retrier restores failed events at most 5 times, 1 hour apart, then marks them ``failed``
  (note e-2-4): :data:`RETRY_ATTEMPTS`, :data:`RETRY_INTERVAL_SECONDS`;
- the producer is idempotent with ``acks=all`` (note e-3) — kafkaguard's relay always is.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from kafkaguard import Fixed, KafkaguardSettings, PublishMode, RestoreSettings, RetryPolicy

RETRY_ATTEMPTS = 5
RETRY_INTERVAL_SECONDS = 3600
ORDER_AGGREGATE = "order"


class OrdersSettings(BaseSettings):
    """``ORDERS_DATABASE_URL``, ``ORDERS_BOOTSTRAP_SERVERS``, ``ORDERS_SCHEMA``, ``ORDERS_SUMMARY_GROUP``."""

    model_config = SettingsConfigDict(env_prefix="ORDERS_")

    database_url: str = ""
    bootstrap_servers: str = "127.0.0.1:29092"
    schema_name: str = "orders"
    summary_group: str = "order-summaries"


def restore_settings() -> RestoreSettings:
    """The note's retrier: 5 attempts, 1 hour apart, then ``failed`` (parked for an operator)."""
    return RestoreSettings(
        policy=RetryPolicy(max_attempts=RETRY_ATTEMPTS, backoff=Fixed(seconds=RETRY_INTERVAL_SECONDS))
    )


def kafkaguard_settings(settings: OrdersSettings) -> KafkaguardSettings:
    """kafkaguard's settings for the order service: outbox mode, its schema, the note's retrier."""
    base = KafkaguardSettings()
    return base.model_copy(
        update={
            "bootstrap_servers": settings.bootstrap_servers,
            "database_url": settings.database_url,
            "db_schema": settings.schema_name,
            "publish": base.publish.model_copy(update={"modes_by_aggregate": {ORDER_AGGREGATE: PublishMode.OUTBOX}}),
            "restore": restore_settings(),
            "consumer": base.consumer.model_copy(update={"group_id": settings.summary_group}),
        }
    )
