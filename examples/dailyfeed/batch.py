"""dailyfeed's batch service: the two restore jobs, every minute (as dailyfeed's CronJobs) or once.

    python -m examples.dailyfeed.batch --once
    python -m examples.dailyfeed.batch --every 60s

- ``publishDeadletterRestoreJob``: the content service's publisher dead letters, republished to
  Kafka (default) or handed to the activity service's listener store (``--handoff``, dailyfeed's
  own behaviour: applied without Kafka);
- ``listenerDeadletterRestoreJob``: the activity service's listener dead letters, re-applied through
  its handlers and inbox.
"""

from __future__ import annotations

import argparse
import logging

from examples.dailyfeed.activity.handlers import registry as activity_handlers
from examples.dailyfeed.config import DailyfeedSettings
from kafkaguard import (
    KafkaguardSettings,
    ListenerRestoreJob,
    PublisherRestoreJob,
    PublisherStrategy,
    RunReport,
    create_engine,
    run_every,
)

log = logging.getLogger("dailyfeed.batch")


class Batch:
    def __init__(self, settings: DailyfeedSettings, *, handoff: bool) -> None:
        base = KafkaguardSettings()
        strategy = PublisherStrategy.HANDOFF if handoff else PublisherStrategy.REPUBLISH
        restore = base.restore.model_copy(
            update={"publisher_strategy": strategy, "handoff_group": settings.activity_group}
        )
        topics = base.topics.model_copy(update={"partitions": settings.topic_partitions})
        self.kg = base.model_copy(
            update={
                "bootstrap_servers": settings.bootstrap_servers,
                "database_url": settings.database_url,
                "restore": restore,
                "topics": topics,
                "consumer": base.consumer.model_copy(update={"group_id": settings.activity_group}),
            }
        )
        self.content = create_engine(url=settings.database_url, schema=settings.content_schema)
        self.activity = create_engine(url=settings.database_url, schema=settings.activity_schema)
        self.publisher_job = PublisherRestoreJob.from_settings(self.kg, self.content, listener_engine=self.activity)
        # The listener restore re-runs the activity service's handlers, through its inbox, for its group:
        # every key whose oldest open dead letter is due, in order; a key that fails again waits for its
        # next attempt (retried), or is parked as failed once attempts are exhausted.
        self.listener_job = ListenerRestoreJob.from_settings(self.kg, activity_handlers, self.activity)

    def run(self) -> tuple[RunReport, RunReport]:
        """One run of both jobs; publisher first, so handed-off events are applied in the same run."""
        publisher = self.publisher_job.run_once()
        listener = self.listener_job.run_once()
        log.info(
            "publishDeadletterRestoreJob restored=%d retried=%d failed=%d; "
            "listenerDeadletterRestoreJob restored=%d retried=%d failed=%d",
            publisher.restored, publisher.retried, publisher.failed,
            listener.restored, listener.retried, listener.failed,
        )  # fmt: skip
        return publisher, listener

    def close(self) -> None:
        """Flush the producer (republish) and close the database pools."""
        self.publisher_job.close()
        self.listener_job.close()
        self.content.dispose()
        self.activity.dispose()


def parse_every(text: str) -> float:
    """``60s``, ``5m``, ``1h`` or plain seconds, as seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise SystemExit(f"--every: expected e.g. 60s, 5m or 1h, not {text!r}") from None
    if seconds <= 0:
        raise SystemExit("--every: the interval must be positive")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument("--once", action="store_true", help="one run of both jobs, then exit")
    when.add_argument("--every", help="run on a schedule, e.g. 60s")
    parser.add_argument("--handoff", action="store_true", help="hand publisher dead letters to the listener store")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    batch = Batch(DailyfeedSettings(), handoff=args.handoff)
    try:
        if args.once:
            batch.run()
        else:
            run_every(parse_every(args.every), batch.run)  # until SIGTERM or Ctrl-C
    finally:
        batch.close()


if __name__ == "__main__":
    main()
