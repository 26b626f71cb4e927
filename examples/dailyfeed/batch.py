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

from examples.dailyfeed.config import DailyfeedSettings
from kafkaguard.cli.listener_restore import listener_run_once
from kafkaguard.db.engine import sync_engine
from kafkaguard.restore.publisher_job import PublisherRestoreJob, RunReport
from kafkaguard.restore.schedule import parse_interval, run_every
from kafkaguard.restore.settings import PublisherStrategy
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.transports.kafka_producer import SyncProducer
from kafkaguard.transports.kafka_topics import TopicRegistry

log = logging.getLogger("dailyfeed.batch")
HANDLERS = "examples.dailyfeed.activity.handlers:registry"


class Batch:
    def __init__(self, settings: DailyfeedSettings, *, handoff: bool) -> None:
        base = KafkaguardSettings()
        strategy = PublisherStrategy.HANDOFF if handoff else PublisherStrategy.REPUBLISH
        restore = base.restore.model_copy(
            update={"publisher_strategy": strategy, "handoff_group": settings.activity_group}
        )
        self.kg = base.model_copy(
            update={
                "bootstrap_servers": settings.bootstrap_servers,
                "database_url": settings.database_url,
                "restore": restore,
                "consumer": base.consumer.model_copy(update={"group_id": settings.activity_group}),
            }
        )
        self.content = sync_engine(settings.database_url, schema=settings.content_schema)
        self.activity = sync_engine(settings.database_url, schema=settings.activity_schema)
        producer = None if handoff else SyncProducer(settings.bootstrap_servers, timeout=15)
        topics = TopicRegistry(settings.bootstrap_servers, partitions=settings.topic_partitions)
        self.publisher_job = PublisherRestoreJob(
            self.content, restore, producer=producer, listener_engine=self.activity, ensure_topic=topics.ensure
        )

    def run(self) -> tuple[RunReport, RunReport]:
        """One run of both jobs; publisher first, so handed-off events are applied in the same run."""
        publisher = self.publisher_job.run_once()
        listener = listener_run_once(self.kg, self.activity, app=HANDLERS)
        log.info(
            "publishDeadletterRestoreJob restored=%d retried=%d failed=%d; "
            "listenerDeadletterRestoreJob restored=%d retried=%d failed=%d",
            publisher.restored, publisher.retried, publisher.failed,
            listener.restored, listener.retried, listener.failed,
        )  # fmt: skip
        return publisher, listener

    def close(self) -> None:
        """Flush the producer (republish) and close the database pools."""
        if self.publisher_job.producer is not None:
            self.publisher_job.producer.close()
        self.content.dispose()
        self.activity.dispose()


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
            run_every(parse_interval(args.every), batch.run)
    finally:
        batch.close()


if __name__ == "__main__":
    main()
