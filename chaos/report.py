"""The chaos table (scenario x mode → lost, duplicated, reordered, phantom, time to recover):
Rich for the terminal, JSON and Markdown files, and the acceptance check.

Acceptance (DESIGN.md's promises): ``outbox`` all four counts 0; ``direct`` and ``http`` lost 0
(phantoms and reorderings are counted and explained); ``background`` is reported, its loss window
expected. A run that crashed fails the acceptance.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from chaos.profiles import Profile
from chaos.runner import RunResult
from kafkaguard.publisher.settings import PublishMode as M

MODE_NOTES = {
    M.OUTBOX: "event row in the business transaction, relay publishes: every count must be 0.",
    M.DIRECT: "phantom = events acknowledged by Kafka whose transaction then rolled back (the workload "
    "rolls back ~5% on purpose after publishing, shown in brackets; the rest are commits that failed "
    "after the ack, e.g. the publisher's PostgreSQL killed). "
    "reordered: an event dead-lettered during an outage is republished by the restore job after later "
    "events of its key went out directly.",
    M.HTTP: "as direct: phantom = events the endpoint applied whose transaction rolled back or failed to "
    "commit; dead letters are handed to the listener store and restored there.",
    M.BACKGROUND: "lost = events committed but still queued in the publishing process when it died "
    "(the window between commit and dead-letter write); DLQ-topic events are replayed by the consumer "
    "reading <topic>.dlq, out of order.",
}
COLUMNS = ("lost", "duplicated", "reordered", "phantom")


def row(r: RunResult) -> dict[str, Any]:
    """One result as a flat dict (the JSON and Markdown rows)."""
    base: dict[str, Any] = {"scenario": r.scenario, "mode": r.mode.value, "seconds": round(r.seconds, 1)}
    if r.outcome is None:
        return {**base, "error": r.error}
    v, o = r.outcome.verdict, r.outcome
    return {
        **base,
        **{c: getattr(v, c) for c in COLUMNS},
        "recover_seconds": None if o.recover_seconds is None else round(o.recover_seconds, 1),
        "committed": v.committed,
        "applied": v.applied,
        "attempts": o.attempts,
        "rolled_back": o.rolled_back,
        "publisher_dead_letters": o.publisher_dead_letters,
        "listener_dead_letters": o.listener_dead_letters,
        "phantom_on_purpose": o.phantom_on_purpose,
        "notes": o.notes,
    }


def violations(results: list[RunResult]) -> list[str]:
    """What breaks the acceptance (empty when the promises held)."""
    found: list[str] = []
    for r in results:
        cell = f"{r.scenario}/{r.mode.value}"
        if r.outcome is None:
            found.append(f"{cell}: run failed: {r.error}")
            continue
        v = r.outcome.verdict
        if r.mode is M.OUTBOX and any(getattr(v, c) for c in COLUMNS):
            found.append(f"{cell}: " + ", ".join(f"{c}={getattr(v, c)}" for c in COLUMNS))
        if r.mode in (M.DIRECT, M.HTTP) and v.lost:
            found.append(f"{cell}: lost={v.lost}")
    return found


def _fmt(value: Any, bad: bool) -> str:
    text = "—" if value is None else str(value)
    return f"[bold red]{text}[/]" if bad else text


def print_table(results: list[RunResult], profile: Profile, seed: int, console: Console | None = None) -> None:
    """The table on the terminal, with the modes' notes below."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)  # logs and CI get the whole table
    table = Table(title=f"kafkaguard chaos — profile {profile.name}, {profile.events} events/run, seed {seed}")
    for name in ("scenario", "mode", *COLUMNS, "recover s", "committed", "applied", "run s"):
        table.add_column(name, justify="left" if name in ("scenario", "mode") else "right")
    for r in results:
        d = row(r)
        if r.outcome is None:
            table.add_row(r.scenario, r.mode.value, f"[bold red]ERROR[/] {r.error}", "", "", "", "", "", "", "")
            continue
        strict = r.mode is M.OUTBOX
        cells = [_fmt(d[c], bool(d[c]) and (strict or (c == "lost" and r.mode is not M.BACKGROUND))) for c in COLUMNS]
        table.add_row(r.scenario, r.mode.value, *cells, _fmt(d["recover_seconds"], False), str(d["committed"]),
                      str(d["applied"]), str(d["seconds"]))  # fmt: skip
    console.print(table)
    for mode in sorted({r.mode for r in results}, key=lambda m: m.value):
        console.print(f"[bold]{mode.value}[/]: {MODE_NOTES[mode]}")


def markdown(results: list[RunResult], profile: Profile, seed: int, database: str = "postgresql") -> str:
    """The table as Markdown (for the README), notes included."""
    lines = [
        f"Profile `{profile.name}`: {profile.events} events per run, seed {seed}, databases on {database}.",
        "",
        "| scenario | mode | lost | duplicated | reordered | phantom | time to recover (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        d = row(r)
        if r.outcome is None:
            lines.append(f"| {r.scenario} | {r.mode.value} | error | | | | |")
            continue
        rec = "—" if d["recover_seconds"] is None else d["recover_seconds"]
        cells = [str(d[c]) for c in COLUMNS]
        if d["phantom"]:
            cells[3] += f" ({d['phantom_on_purpose']} rolled back on purpose)"
        lines.append(f"| {r.scenario} | {r.mode.value} | " + " | ".join(cells) + f" | {rec} |")
    lines += ["", "Notes:", ""]
    lines += [f"- `{m.value}`: {MODE_NOTES[m]}" for m in sorted({r.mode for r in results}, key=lambda m: m.value)]
    lines.append(
        "- time to recover: from the end of the fault to the last committed write applied (— = never: events lost)."
    )
    return "\n".join(lines) + "\n"


def write(
    results: list[RunResult], profile: Profile, seed: int, out: Path, database: str = "postgresql"
) -> tuple[Path, Path]:
    """Write ``chaos-<profile>.json`` and ``chaos-<profile>.md`` under ``out`` (``-<database>`` added
    for a suite on MariaDB, so the two tables sit side by side); return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    data = {"profile": asdict(profile), "seed": seed, "database": database, "results": [row(r) for r in results],
            "violations": violations(results), "notes": {m.value: n for m, n in MODE_NOTES.items()}}  # fmt: skip
    stem = f"chaos-{profile.name}" + ("" if database == "postgresql" else f"-{database}")
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path.write_text(markdown(results, profile, seed, database))
    return json_path, md_path
