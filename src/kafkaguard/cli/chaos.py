"""``kafkaguard chaos``: run the chaos suite and print, then write, its table."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from kafkaguard.chaos.profiles import PROFILES

if TYPE_CHECKING:
    from kafkaguard.chaos.runner import RunResult


def chaos(
    profile: Annotated[
        str, typer.Option(help="quick (about 1,000 events, a subset) or full (10,000, everything).")
    ] = "quick",
    seed: Annotated[int, typer.Option(help="Workload seed: the same seed replays the same writes.")] = 7,
    events: Annotated[int | None, typer.Option(help="Events per run (default: the profile's).")] = None,
    scenario: Annotated[list[str] | None, typer.Option("--scenario", help="Only this scenario; repeatable.")] = None,
    mode: Annotated[list[str] | None, typer.Option("--mode", help="Only this publish mode; repeatable.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the JSON and Markdown tables and the run logs.")] = Path(
        "reports/chaos"
    ),
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ...")] = "WARNING",
) -> None:
    """Run workloads through real Kafka and PostgreSQL while injecting faults; check lost, duplicated,
    reordered and phantom events from the databases. Exits 1 if a mode broke its promise."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if profile not in PROFILES:
        raise typer.BadParameter(f"profile must be one of {sorted(PROFILES)}")
    chosen = PROFILES[profile]
    if events is not None:
        chosen = dataclasses.replace(chosen, events=events)
    # The suite drives the reference services (FastAPI): imported here, so `kafkaguard` runs without the http extra.
    from kafkaguard.chaos import report
    from kafkaguard.chaos.runner import run_suite

    console = Console(width=None if sys.stdout.isatty() else 160)

    done: list[RunResult] = []

    def show(r: RunResult) -> None:
        d = report.row(r)
        summary = r.error or ", ".join(f"{c}={d[c]}" for c in report.COLUMNS)
        console.print(f"[bold]{r.scenario}[/] / {r.mode.value}: {summary} ({r.seconds:.0f} s)")
        # The tables are rewritten after every run: an interrupted full suite keeps what it measured.
        done.append(r)
        report.write(done, chosen, seed, out)

    results = run_suite(chosen, seed=seed, out=out, scenarios=scenario or (), modes=mode or (), on_result=show)
    report.print_table(results, chosen, seed, console)
    json_path, md_path = report.write(results, chosen, seed, out)
    console.print(f"written: {json_path}, {md_path}")
    problems = report.violations(results)
    for p in problems:
        console.print(f"[bold red]violation:[/] {p}")
    if problems:
        raise typer.Exit(1)
