"""Build the publisher restore job from settings (shared by ``kafkaguard restore`` and ``dead-letters replay``)."""

from __future__ import annotations

from sqlalchemy import Engine

from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.transports.kafka_producer import SyncProducer
from kafkaguard.transports.kafka_topics import TopicRegistry


def publisher_job(settings: KafkaguardSettings, engine: Engine) -> PublisherRestoreJob:
    """The publisher restore job with a producer when the strategy republishes."""
    if settings.restore.publisher_strategy is not PublisherStrategy.REPUBLISH:
        return PublisherRestoreJob(engine, settings.restore)
    producer = SyncProducer(
        settings.bootstrap_servers, timeout=settings.relay.delivery_timeout, overrides=settings.producer
    )
    # Dead letters made while Kafka was down may name a topic that was never created.
    topics = TopicRegistry(
        settings.bootstrap_servers,
        partitions=settings.topics.partitions,
        replication=settings.topics.replication,
        create_missing=settings.topics.create_missing,
        overrides=settings.producer,
    )
    return PublisherRestoreJob(engine, settings.restore, producer=producer, ensure_topic=topics.ensure)
