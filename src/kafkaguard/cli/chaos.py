"""``kafkaguard chaos``: run the chaos suite and print, then write, its table.

The suite is dev tooling and is not installed with the package: it lives in the repository's
``chaos/`` folder beside ``src/`` (like ``bench/``). This command finds that folder — the checkout
the running kafkaguard was installed from, else the working directory — and runs it; anywhere else
it says so in one line (exit 2).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

import kafkaguard
from kafkaguard.cli.errors import UsageProblem

SUITE = "chaos.command"  # the module holding the command's body, in the checkout's chaos package


def _checkouts() -> list[Path]:
    """Where a checkout may be: the one ``kafkaguard`` is imported from (``src/kafkaguard``), the cwd."""
    package = Path(kafkaguard.__file__).resolve().parent
    return [package.parent.parent, Path.cwd()]


def find_suite(checkouts: list[Path] | None = None) -> ModuleType:
    """Import the chaos suite's command module from a checkout of the repository.

    A ``chaos`` already importable (``python -m chaos`` from the checkout, or on ``PYTHONPATH``) is
    used as is; otherwise the first of ``checkouts`` that has ``chaos/command.py`` is put first on
    ``sys.path``. Raises :class:`UsageProblem` (exit 2) when there is none.
    """
    roots = _checkouts() if checkouts is None else checkouts
    if "chaos" not in sys.modules:
        for root in roots:
            if (root / "chaos" / "command.py").is_file():
                if str(root) not in sys.path:
                    sys.path.insert(0, str(root))
                break
    try:
        return importlib.import_module(SUITE)
    except ModuleNotFoundError as exc:
        if exc.name not in ("chaos", SUITE):
            raise
        looked = ", ".join(str(r) for r in roots)
        raise UsageProblem(
            "kafkaguard chaos runs from a checkout of the repository: no chaos/ suite found "
            f"(looked in {looked}); clone the repository, install it with `pip install -e .` and run it there"
        ) from exc


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
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="On secured servers: SCRAM over TLS with ACLs, each worker its own principal; PostgreSQL over TLS.",
        ),
    ] = False,
    brokers: Annotated[
        int,
        typer.Option(help="At least this many brokers (1 or 3) for every run but network-cut's proxied one."),
    ] = 1,
    database: Annotated[
        str,
        typer.Option(help="Both services' database server: postgresql or mariadb (a dedicated server each)."),
    ] = "postgresql",
) -> None:
    """Run workloads through real Kafka and PostgreSQL (or MariaDB) while injecting faults; check lost, duplicated,
    reordered and phantom events from the databases. Exits 1 if a mode broke its promise.

    Runs from a checkout of the repository only (the suite is not installed with the package)."""
    # Imported here: the suite drives the reference services (FastAPI), so `kafkaguard` runs without the http extra.
    suite = find_suite()
    code: int = suite.run(
        profile=profile,
        seed=seed,
        events=events,
        scenarios=scenario or (),
        modes=mode or (),
        out=out,
        log_level=log_level,
        secure=secure,
        brokers=brokers,
        database=database,
    )
    if code:
        raise typer.Exit(code)
