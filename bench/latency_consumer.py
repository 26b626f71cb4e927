"""A kafkaguard consumer process that notes when each event's effect committed (for :mod:`bench.latency`).

``python -m bench.latency_consumer URL BOOTSTRAP TOPIC GROUP BATCH_SIZE OUT``: runs a bench handler
registry through kafkaguard's ``Worker`` — ``BATCH_SIZE`` ``default``: :class:`ConsumerSettings`'
default batch size with the per-event handler (the path most users run); a number: that batch size
with the batch handler; its ``on_outcome`` hook fires after the outcome
is durable (the transaction committed), and notes ``event_id, broker append time, now`` per event.
On SIGTERM it stops gracefully and writes those lines to ``OUT``.
"""

from __future__ import annotations

import sys
import time

from bench.handlers import per_event_registry, registry
from kafkaguard.consumer.decisions import Outcome
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.runner import build_worker, run_until_signalled
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.settings import KafkaguardSettings

DEFAULT = "default"  # BATCH_SIZE meaning: leave ConsumerSettings.batch_size at its default


def main() -> None:
    url, bootstrap, topic, group, batch_size, out = sys.argv[1:7]
    settings = KafkaguardSettings(
        bootstrap_servers=bootstrap,
        database_url=url,
        consumer=ConsumerSettings(
            group_id=group, topics=(topic,), **({} if batch_size == DEFAULT else {"batch_size": int(batch_size)})
        ),
    )
    worker = build_worker(settings, per_event_registry if batch_size == DEFAULT else registry)
    lines: list[str] = []

    def on_outcome(record: Record, outcome: Outcome) -> None:
        now = time.time()
        event_id = next((v.decode() for k, v in record.headers if k == "event_id" and v), "?")
        appended = record.timestamp.timestamp() if record.timestamp else float("nan")
        lines.append(f"{event_id} {appended:.6f} {now:.6f} {outcome.value}\n")

    worker.on_outcome = on_outcome
    try:
        run_until_signalled(worker)
    finally:
        with open(out, "w") as f:
            f.writelines(lines)


if __name__ == "__main__":
    main()
