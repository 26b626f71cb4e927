"""Settings of the dailyfeed reference services (environment ``DAILYFEED_*``).

Each service owns a schema of the shared local PostgreSQL (``content``, ``activity``), as
microservices with their own databases would; kafkaguard's tables live in each service's schema.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DailyfeedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAILYFEED_")

    database_url: str = ""
    bootstrap_servers: str = "127.0.0.1:29092"
    content_schema: str = "content"
    activity_schema: str = "activity"
    activity_group: str = "activity"
    # outbox (default) | direct | background | http — per service, as dailyfeed's publish-type.post-service
    post_publish_mode: str = "outbox"
    comment_publish_mode: str = "outbox"
    activity_url: str = "http://127.0.0.1:8002"
    # Shared by both services: the content service signs its http-mode requests with it, the activity
    # service's receiving endpoint refuses (401) any request not signed with it.
    http_secret: SecretStr | None = None
    topic_partitions: int = 3
