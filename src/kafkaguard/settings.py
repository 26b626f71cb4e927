"""kafkaguard's settings: environment variables (``KAFKAGUARD_...``, nested with ``__``) and a TOML file.

    KAFKAGUARD_BOOTSTRAP_SERVERS=127.0.0.1:29092
    KAFKAGUARD_DATABASE_URL=postgresql+psycopg://user:pw@127.0.0.1:25432/app
    KAFKAGUARD_PUBLISH__DEFAULT_MODE=direct
    KAFKAGUARD_CONFIG=kafkaguard.toml     # a file with the same keys ([publish], [relay], ...)

Environment variables win over the file. Raw librdkafka settings pass through ``producer`` and
``consumer_client`` unchanged (and win over kafkaguard's safe defaults).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.publisher.settings import PublishSettings
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.restore.settings import RestoreSettings
from kafkaguard.topics import DEFAULT_TOPIC_PATTERN, topic_for

CONFIG_ENV = "KAFKAGUARD_CONFIG"


class TopicSettings(BaseModel):
    """Topic naming and creation."""

    model_config = ConfigDict(frozen=True)
    pattern: str = DEFAULT_TOPIC_PATTERN
    partitions: int = Field(default=3, ge=1)
    replication: int = Field(default=1, ge=1)
    create_missing: bool = True

    def for_aggregate(self, aggregate_type: str) -> str:
        return topic_for(aggregate_type, self.pattern)


class KafkaguardSettings(BaseSettings):
    """Every setting of kafkaguard, one sub-model per component."""

    model_config = SettingsConfigDict(env_prefix="KAFKAGUARD_", env_nested_delimiter="__", frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:29092"
    database_url: str = ""
    db_schema: str | None = Field(default=None, description="schema for kafkaguard's tables (default: search_path)")
    producer: dict[str, Any] = Field(default_factory=dict, description="librdkafka producer overrides")
    consumer_client: dict[str, Any] = Field(default_factory=dict, description="librdkafka consumer overrides")
    topics: TopicSettings = Field(default_factory=TopicSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    restore: RestoreSettings = Field(default_factory=RestoreSettings)
    metrics_port: int | None = Field(default=None, description="serve Prometheus /metrics on 127.0.0.1:<port>")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)
