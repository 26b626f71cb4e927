"""What ``kafkaguard chaos`` and ``python -m chaos`` do: run the suite, print and write its table.

The command's options are defined once, in :mod:`kafkaguard.cli.chaos` (the CLI reference is
generated from there); that command finds this checkout's package and calls :func:`run`.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import typer
from rich.console import Console

from chaos import report
from chaos.database import DIALECTS, Dialect
from chaos.profiles import PROFILES
from chaos.runner import RunResult, matrix, run_suite


def run(
    *,
    profile: str,
    seed: int,
    events: int | None,
    scenarios: Sequence[str],
    modes: Sequence[str],
    out: Path,
    log_level: str,
    secure: bool = False,
    brokers: int = 1,
    database: str = "postgresql",
) -> int:
    """Run the chosen profile's matrix and return the exit code: 0, or 1 if a mode broke its promise.

    The JSON and Markdown tables under ``out`` are rewritten after every run, so an interrupted full
    suite keeps what it measured. An unknown profile, scenario or mode is a usage error (exit 2),
    raised before any server starts.
    """
    if profile not in PROFILES:
        raise typer.BadParameter(f"profile must be one of {sorted(PROFILES)}", param_hint="--profile")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = PROFILES[profile]
    if events is not None:
        chosen = dataclasses.replace(chosen, events=events)
    if brokers not in (1, 3):
        raise typer.BadParameter("must be 1 or 3", param_hint="--brokers")
    if database not in DIALECTS:
        raise typer.BadParameter(f"must be one of {', '.join(DIALECTS)}", param_hint="--database")
    if secure and database != "postgresql":
        raise typer.BadParameter("--secure runs on PostgreSQL only", param_hint="--database")
    dialect: Dialect = "mariadb" if database == "mariadb" else "postgresql"
    try:
        matrix(chosen, scenarios, modes)  # unknown names are refused before any server starts
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scenario/--mode") from exc
    console = Console(width=None if sys.stdout.isatty() else 160)
    done: list[RunResult] = []

    def show(r: RunResult) -> None:
        d = report.row(r)
        summary = r.error or ", ".join(f"{c}={d[c]}" for c in report.COLUMNS)
        console.print(f"[bold]{r.scenario}[/] / {r.mode.value}: {summary} ({r.seconds:.0f} s)")
        done.append(r)
        report.write(done, chosen, seed, out, dialect)

    results = run_suite(
        chosen, seed=seed, out=out, scenarios=scenarios, modes=modes, on_result=show, secure=secure,
        min_brokers=brokers, database=dialect,
    )  # fmt: skip
    report.print_table(results, chosen, seed, console)
    json_path, md_path = report.write(results, chosen, seed, out, dialect)
    console.print(f"written: {json_path}, {md_path}")
    problems = report.violations(results)
    for p in problems:
        console.print(f"[bold red]violation:[/] {p}")
    return 1 if problems else 0
