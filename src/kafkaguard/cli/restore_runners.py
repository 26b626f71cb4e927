"""Build the publisher restore job from settings (shared by ``kafkaguard restore`` and ``dead-letters replay``)."""

from __future__ import annotations

from sqlalchemy import Engine

from kafkaguard.restore.publisher_job import PublisherRestoreJob
from kafkaguard.settings import KafkaguardSettings


def publisher_job(settings: KafkaguardSettings, engine: Engine) -> PublisherRestoreJob:
    """The publisher restore job with a producer when the strategy republishes."""
    return PublisherRestoreJob.from_settings(settings, engine)
