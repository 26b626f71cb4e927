"""kafkaguard's settings: environment variables (``KAFKAGUARD_...``, nested with ``__``) and a TOML file.

    KAFKAGUARD_BOOTSTRAP_SERVERS=127.0.0.1:29092
    KAFKAGUARD_DATABASE_URL=postgresql+psycopg://user:pw@127.0.0.1:25432/app
    KAFKAGUARD_PUBLISH__DEFAULT_MODE=direct
    KAFKAGUARD_CONFIG=kafkaguard.toml     # a file with the same keys ([publish], [relay], ...)

Arguments win over environment variables, which win over the file. TLS and SASL for every Kafka
client are one block, ``kafka_security`` (:mod:`kafkaguard.kafka_security`). Raw librdkafka settings pass
through ``producer`` and ``consumer_client`` unchanged (and win over kafkaguard's safe defaults and
``kafka_security``); read them merged with :meth:`KafkaguardSettings.kafka_producer_overrides` and
:meth:`KafkaguardSettings.kafka_consumer_overrides`.
Tables and lists given in an environment variable are JSON (``KAFKAGUARD_CONSUMER__TOPICS='["a"]'``).

Strict: a ``KAFKAGUARD_*`` variable that is no setting (and not one of :data:`NON_SETTING_VARIABLES`),
a key of the TOML file or of an argument that is no setting, a ``KAFKAGUARD_CONFIG`` naming a file
that does not exist, and a value that does not validate raise :class:`~kafkaguard.errors.ConfigurationError`
with one line naming the nearest valid setting and where the bad value came from.
:func:`explain` says, for every effective setting, its value (secrets masked) and its source.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from kafkaguard.console.settings import ConsoleSettings
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.errors import ConfigurationError
from kafkaguard.kafka_security import KafkaSecurity
from kafkaguard.log_json import LogFormat
from kafkaguard.masking import mask
from kafkaguard.process_gc import DEFAULT_GC_THRESHOLD, GC_THRESHOLD_MAX
from kafkaguard.publisher.settings import PublishSettings
from kafkaguard.relay.settings import RelaySettings
from kafkaguard.restore.settings import RestoreSettings
from kafkaguard.settings_schema import annotation_at, children, unknown_keys
from kafkaguard.settings_sources import CONFIG_ENV as CONFIG_ENV
from kafkaguard.settings_sources import ENV_PREFIX as ENV_PREFIX
from kafkaguard.settings_sources import NON_SETTING_VARIABLES as NON_SETTING_VARIABLES
from kafkaguard.settings_sources import (
    Layers,
    config_file,
    dotted,
    env_name,
    environment_problems,
    invalid_message,
    read_config_file,
    unknown_message,
)
from kafkaguard.settings_sources import Source as Source
from kafkaguard.topics import DEFAULT_TOPIC_PATTERN, topic_for
from kafkaguard.tracing.settings import TracingSettings


class TopicSettings(BaseModel):
    """Topic naming and creation."""

    model_config = ConfigDict(frozen=True)
    pattern: str = Field(default=DEFAULT_TOPIC_PATTERN, description="topic of an event: {aggregate_type} is replaced")
    partitions: int = Field(default=3, ge=1, description="partitions of a topic kafkaguard creates")
    replication: int = Field(default=1, ge=1, description="replication factor of a topic kafkaguard creates")
    create_missing: bool = Field(
        default=True, description="create a missing topic before publishing; False: publishing to it is refused"
    )

    def for_aggregate(self, aggregate_type: str) -> str:
        return topic_for(aggregate_type, self.pattern)


class KafkaguardSettings(BaseSettings):
    """Every setting of kafkaguard, one sub-model per component.

    Raises :class:`~kafkaguard.errors.ConfigurationError` (one line) for an unknown setting in the
    environment, the TOML file or the arguments, a missing TOML file, or an invalid value.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid")

    bootstrap_servers: str = Field(default="127.0.0.1:29092", description="Kafka bootstrap servers, host:port[,...]")
    database_url: str = Field(default="", description="SQLAlchemy URL of the database holding kafkaguard's tables")
    db_schema: str | None = Field(default=None, description="schema for kafkaguard's tables (default: search_path)")
    producer: dict[str, Any] = Field(default_factory=dict, description="librdkafka producer overrides")
    consumer_client: dict[str, Any] = Field(default_factory=dict, description="librdkafka consumer overrides")
    kafka_security: KafkaSecurity = Field(
        default_factory=KafkaSecurity, description="TLS/SASL of every Kafka client kafkaguard creates"
    )
    topics: TopicSettings = Field(default_factory=TopicSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    restore: RestoreSettings = Field(default_factory=RestoreSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    metrics_port: int | None = Field(default=None, description="serve Prometheus /metrics on 127.0.0.1:<port>")
    log_format: LogFormat = Field(default=LogFormat.TEXT, description="worker commands' log lines: text or json")
    gc_threshold: int = Field(
        default=DEFAULT_GC_THRESHOLD,
        ge=0,
        le=GC_THRESHOLD_MAX,
        description="worker commands (relay, consume, forward): net allocations between young garbage "
        "collections, startup's objects frozen out of them (Python's default: 700); 0 leaves Python's collector alone",
    )

    def __init__(self, **values: Any) -> None:
        arguments = {k: v for k, v in values.items() if not k.startswith("_")}  # _env_file & co. are options
        unknown = [unknown_message(type(self), path, "argument") for path in unknown_keys(type(self), arguments)]
        if unknown:
            raise ConfigurationError("; ".join(unknown))
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(invalid_message(type(self), exc, arguments)) from None
        except SettingsError as exc:  # a structured value the environment checks let through
            raise ConfigurationError(f"{exc}; tables and lists in environment variables are JSON") from None

    def kafka_producer_overrides(self) -> dict[str, Any]:
        """librdkafka settings of every producer and admin client: :attr:`kafka_security`'s, then
        ``producer``'s (raw overrides win). Secret files are read now; the dict holds secrets in clear."""
        return {**self.kafka_security.client_config(), **self.producer}

    def kafka_consumer_overrides(self) -> dict[str, Any]:
        """librdkafka settings of every consumer: :attr:`kafka_security`'s, then ``consumer_client``'s (which win)."""
        return {**self.kafka_security.client_config(), **self.consumer_client}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        problems = environment_problems(settings_cls, os.environ)
        if problems:
            raise ConfigurationError("; ".join(problems))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file(os.environ)
        if path is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=read_config_file(settings_cls, path)))
        return tuple(sources)


@dataclass(frozen=True)
class EffectiveSetting:
    """One setting as in effect: its TOML key, its environment variable, its value (secrets masked), its source."""

    key: str
    env: str | None
    value: Any
    source: Source


def explain(**arguments: Any) -> tuple[KafkaguardSettings, list[EffectiveSetting]]:
    """The settings from the environment, the file and ``arguments``, and every value with its source.

    Values are JSON-ready and masked (:mod:`kafkaguard.masking`). A mapping (``producer``) is listed key by key.
    """
    settings = KafkaguardSettings(**arguments)
    layers = Layers.read(KafkaguardSettings, arguments)
    rows: list[EffectiveSetting] = []

    def walk(value: Any, path: tuple[str, ...], in_model: bool) -> None:
        below = children(annotation_at(KafkaguardSettings, path)) if in_model else None
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, (*path, str(key)), in_model and isinstance(below, dict))
            return
        env = env_name(path) if in_model else None
        rows.append(EffectiveSetting(dotted(path), env, mask(value, path[-1]), layers.source_of(path)))

    for name, value in settings.model_dump(mode="json").items():
        walk(value, (name,), True)
    return settings, rows
