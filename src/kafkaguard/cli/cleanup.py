"""``kafkaguard cleanup``: delete expired outbox, inbox and dead-letter rows in bounded batches."""

from __future__ import annotations

from typing import Annotated

import typer

from kafkaguard.cli.common import engine_for, load_settings, out
from kafkaguard.maintenance.cleanup import CleanupSettings, run_cleanup
from kafkaguard.restore.schedule import parse_interval, run_every


def cleanup(
    once: Annotated[bool, typer.Option("--once", help="One run, then exit.")] = False,
    every: Annotated[str | None, typer.Option("--every", help="Run on a schedule, e.g. 10m.")] = None,
    outbox_retention: Annotated[str, typer.Option(help="Keep published outbox rows this long.")] = "24h",
    inbox_retention: Annotated[str, typer.Option(help="Keep inbox rows this long (> max redelivery).")] = "336h",
    dead_letter_retention: Annotated[str, typer.Option(help="Keep restored/discarded dead letters.")] = "720h",
    batch_size: int = 5000,
    url: Annotated[str | None, typer.Option("--url")] = None,
    schema: Annotated[str | None, typer.Option("--schema")] = None,
) -> None:
    """Delete expired rows, one instance at a time (others skip)."""
    if once == (every is not None):
        raise typer.BadParameter("pass exactly one of --once or --every")
    engine = engine_for(load_settings(url, schema))
    settings = CleanupSettings(
        outbox_retention=parse_interval(outbox_retention),
        inbox_retention=parse_interval(inbox_retention),
        dead_letter_retention=parse_interval(dead_letter_retention),
        batch_size=batch_size,
    )

    def run() -> None:
        report = run_cleanup(engine, settings)
        out.print("cleanup skipped: another instance is running" if report.skipped else f"cleanup: {report.deleted}")

    if once:
        run()
    else:
        assert every is not None
        run_every(parse_interval(every), run)
