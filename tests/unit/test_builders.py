"""The builders of the public API: what they take from the settings and what they refuse (no servers;
``tests/integration/test_public_builders.py`` runs them against the real Kafka and PostgreSQL)."""

from __future__ import annotations

import pytest

from kafkaguard import (
    ConfigurationError,
    Event,
    HandlerRegistry,
    KafkaguardSettings,
    Publisher,
    PublisherRestoreJob,
    PublishMode,
    Relay,
    Worker,
)
from kafkaguard.testing import MemorySource

URL = "postgresql+psycopg://u:p@127.0.0.1:1/nowhere"  # engines connect on first use only


def test_worker_from_settings_wires_the_group_and_takes_a_source_for_tests() -> None:
    source = MemorySource()
    settings = KafkaguardSettings(database_url=URL, consumer={"group_id": "billing", "batch_size": 50})
    worker = Worker.from_settings(settings, HandlerRegistry(), source=source)
    assert worker.source is source and worker.applier.group == "billing" and worker.settings.batch_size == 50
    with pytest.raises(ConfigurationError, match="no topics"):
        Worker.from_settings(settings, HandlerRegistry())
    with pytest.raises(ConfigurationError, match="database URL"):
        Worker.from_settings(KafkaguardSettings(database_url="", consumer={"topics": ["t"]}), HandlerRegistry())


def test_relay_from_settings_refuses_a_debezium_outbox_and_a_missing_url() -> None:
    with pytest.raises(ConfigurationError, match="Debezium relays this outbox"):
        Relay.from_settings(KafkaguardSettings(database_url=URL, relay={"kind": "debezium"}))
    with pytest.raises(ConfigurationError, match="database URL"):
        Relay.from_settings(KafkaguardSettings(database_url=""))


def test_publisher_from_settings_reads_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_PUBLISH__MODES_BY_TYPE", '{"user.signed_up": "direct"}')
    publisher = Publisher.from_settings()
    try:
        assert publisher.mode_for(Event(type="user.signed_up", key="u", payload={})) is PublishMode.DIRECT
        assert publisher.mode_for(Event(type="user.deleted", key="u", payload={})) is PublishMode.OUTBOX
    finally:
        publisher.close()


def test_publisher_restore_job_from_settings_needs_a_database() -> None:
    with pytest.raises(ConfigurationError, match="database URL"):
        PublisherRestoreJob.from_settings(KafkaguardSettings(database_url=""))
