"""How the content service publishes: kafkaguard's Publisher, mode per aggregate from settings.

``DAILYFEED_POST_PUBLISH_MODE`` / ``DAILYFEED_COMMENT_PUBLISH_MODE`` choose ``outbox`` (default),
``direct``, ``background`` or ``http`` — dailyfeed's ``publish-type.post-service`` and
``publish-type.comment-service`` switches. In ``http`` mode events go to the activity service's
receiving endpoint. Any ``KAFKAGUARD_*`` variable (e.g. ``KAFKAGUARD_PUBLISH__DIRECT_TIMEOUT``)
still applies.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from examples.dailyfeed.config import DailyfeedSettings
from kafkaguard import (
    Event,
    KafkaguardSettings,
    Publisher,
    PublishMode,
    create_async_engine,
    create_engine,
    install_exception_handlers,
)

RECEIVE_PATH = "/kafkaguard/events"


def kafkaguard_settings(settings: DailyfeedSettings) -> KafkaguardSettings:
    """The content service's kafkaguard settings (its schema, its modes, the activity endpoint)."""
    base = KafkaguardSettings()
    publish = base.publish.model_copy(
        update={
            "modes_by_aggregate": {
                "post": PublishMode(settings.post_publish_mode),
                "comment": PublishMode(settings.comment_publish_mode),
            },
            "http_default_endpoint": settings.activity_url.rstrip("/") + RECEIVE_PATH,
            # Signs http-mode requests; http mode without it does not start (kafkaguard names the setting).
            "http_secrets": (settings.http_secret,) if settings.http_secret is not None else base.publish.http_secrets,
        }
    )
    topics = base.topics.model_copy(update={"partitions": settings.topic_partitions})
    return base.model_copy(
        update={
            "bootstrap_servers": settings.bootstrap_servers,
            "database_url": settings.database_url,
            "db_schema": settings.content_schema,
            "publish": publish,
            "topics": topics,
        }
    )


class ContentPublisher:
    """The service's engine and publisher, created at start-up and closed at shutdown."""

    def __init__(self, settings: DailyfeedSettings) -> None:
        self.settings = kafkaguard_settings(settings)
        self.engine: AsyncEngine = create_async_engine(
            url=settings.database_url, schema=settings.content_schema, pool_size=20, max_overflow=10
        )
        # Background mode writes its last-resort dead letters through a sync engine of its own.
        self.publisher = Publisher.from_settings(
            self.settings, engine=create_engine(url=settings.database_url, schema=settings.content_schema)
        )

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self.publisher.close()
        await self.engine.dispose()

    def mode_name(self, event: Event) -> str:
        return self.publisher.mode_for(event).value

    async def publish(self, session: AsyncSession, event: Event) -> None:
        await self.publisher.publish_async(session, event)

    def install_error_handlers(self, app: FastAPI) -> None:
        install_exception_handlers(app)
