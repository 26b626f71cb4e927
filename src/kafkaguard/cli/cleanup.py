"""``kafkaguard cleanup``: delete expired outbox, inbox and dead-letter rows in bounded batches."""

from __future__ import annotations

from typing import Annotated

import typer

from kafkaguard.cli.common import engine_for, interval_option, load_settings, once_or_every, say
from kafkaguard.maintenance.cleanup import CleanupSettings, run_cleanup
from kafkaguard.restore.schedule import run_every


def cleanup(
    once: Annotated[bool, typer.Option("--once", help="One run, then exit.")] = False,
    every: Annotated[str | None, typer.Option("--every", help="Run on a schedule, e.g. 10m.")] = None,
    outbox_retention: Annotated[str, typer.Option(help="Keep published outbox rows this long.")] = "24h",
    inbox_retention: Annotated[str, typer.Option(help="Keep inbox rows this long (> max redelivery).")] = "336h",
    dead_letter_retention: Annotated[str, typer.Option(help="Keep restored/discarded dead letters.")] = "720h",
    batch_size: Annotated[int, typer.Option(min=1, help="Rows deleted per statement.")] = 5000,
    url: Annotated[str | None, typer.Option("--url")] = None,
    schema: Annotated[str | None, typer.Option("--schema")] = None,
) -> None:
    """Delete expired rows, one instance at a time (others skip)."""
    interval = once_or_every(once, every)
    settings = CleanupSettings(
        outbox_retention=interval_option(outbox_retention, "--outbox-retention"),
        inbox_retention=interval_option(inbox_retention, "--inbox-retention"),
        dead_letter_retention=interval_option(dead_letter_retention, "--dead-letter-retention"),
        batch_size=batch_size,
    )
    engine = engine_for(load_settings(url, schema))

    def run() -> None:
        report = run_cleanup(engine, settings)
        say("cleanup skipped: another instance is running" if report.skipped else f"cleanup: {report.deleted}")

    if interval is None:
        run()
    else:
        run_every(interval, run)
