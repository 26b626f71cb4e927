"""``kafkaguard dead-letters``: list, show, replay, discard and count dead letters (both stores)."""

from __future__ import annotations

import getpass
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import Progress

from kafkaguard.cli.common import engine_for, load_settings, out, print_json, print_table
from kafkaguard.cli.restore_runners import restore_records
from kafkaguard.stores.dead_letter_queries import (
    Filters,
    Store,
    discard,
    list_records,
    reset_to_pending,
    show_record,
    stats,
)

dead_letters_app = typer.Typer(help="Inspect and act on publisher and listener dead letters.")

StoreOpt = Annotated[Store, typer.Option("--store", help="publisher or listener.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL [env KAFKAGUARD_DATABASE_URL].")]
SchemaOpt = Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")]
StatusOpt = Annotated[str | None, typer.Option(help="pending | parked | restored | failed | discarded")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Event type, e.g. post.created.")]
KeyOpt = Annotated[str | None, typer.Option(help="Ordering key.")]
ErrorOpt = Annotated[str | None, typer.Option("--error-class", help="Error class name.")]
SinceOpt = Annotated[datetime | None, typer.Option(help="Created at or after (ISO time).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Created before (ISO time).")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Consumer group (listener store).")]
IdsOpt = Annotated[list[int] | None, typer.Option("--id", help="Record id (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _filters(
    status: str | None, event_type: str | None, key: str | None, error_class: str | None,
    since: datetime | None, until: datetime | None, group: str | None, ids: list[int] | None,
) -> Filters:  # fmt: skip
    return Filters(status, event_type, key, error_class, since, until, tuple(ids or ()), group)


@dead_letters_app.command("list")
def list_cmd(
    store: StoreOpt = Store.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None, group: GroupOpt = None,
    limit: int = 100, as_json: JsonOpt = False, url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """List dead letters matching the filters, oldest first."""
    engine = engine_for(load_settings(url, schema))
    with engine.connect() as conn:
        rows = list_records(
            conn, store, _filters(status, event_type, key, error_class, since, until, group, None), limit=limit
        )
    if as_json:
        print_json(rows)
    else:
        cols = ["id", "status", "type", "key", "attempts", "error_class", "next_attempt_at", "created_at"]
        print_table(rows, cols, title=f"{store.value} dead letters ({len(rows)})")


@dead_letters_app.command("show")
def show_cmd(record_id: int, store: StoreOpt = Store.LISTENER, url: UrlOpt = None, schema: SchemaOpt = None) -> None:
    """Show every field of one dead letter, history included (always JSON)."""
    engine = engine_for(load_settings(url, schema))
    with engine.connect() as conn:
        row = show_record(conn, store, record_id)
    if row is None:
        out.print(f"no {store.value} dead letter with id {record_id}")
        raise typer.Exit(1)
    print_json(row)


@dead_letters_app.command("stats")
def stats_cmd(
    store: StoreOpt = Store.LISTENER, event_type: TypeOpt = None, group: GroupOpt = None, as_json: JsonOpt = False,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Counts grouped by status and error class."""
    engine = engine_for(load_settings(url, schema))
    with engine.connect() as conn:
        rows = stats(conn, store, _filters(None, event_type, None, None, None, None, group, None))
    if as_json:
        print_json(rows)
    else:
        print_table(rows, ["status", "error_class", "count", "oldest"], title=f"{store.value} dead letters")


@dead_letters_app.command("replay")
def replay_cmd(
    store: StoreOpt = Store.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None, group: GroupOpt = None,
    ids: IdsOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 1000,
    rate: Annotated[float, typer.Option(help="At most this many records per second (0 = unlimited).")] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would be replayed.")] = False,
    reset_only: Annotated[bool, typer.Option("--reset-only", help="Only make them due now.")] = False,
    app: Annotated[str | None, typer.Option(help="module:registry of the handlers (listener store).")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Return matching pending/failed records to pending, due now, and (unless --reset-only) restore them now."""
    settings = load_settings(url, schema)
    engine = engine_for(settings)
    filters = _filters(status, event_type, key, error_class, since, until, group, ids)
    if dry_run:
        with engine.connect() as conn:
            rows = [r for r in list_records(conn, store, filters, limit=limit) if r["status"] in ("pending", "failed")]
        print_table(rows, ["id", "status", "type", "key", "attempts", "error_class"], title="would replay")
        return
    with engine.begin() as conn:
        ids_reset = reset_to_pending(conn, store, filters, limit=limit, by=getpass.getuser())
    out.print(f"{len(ids_reset)} record(s) reset to pending")
    if reset_only or not ids_reset:
        return
    restored = 0
    with Progress(transient=False, console=out) as progress:
        task = progress.add_task("replaying", total=len(ids_reset))
        for record_id in ids_reset:
            started = time.monotonic()
            restored += restore_records(settings, engine, store, [record_id], app=app)
            progress.advance(task)
            if rate > 0:
                time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - started)))  # rate limit, not synchronisation
    out.print(f"restored {restored} of {len(ids_reset)}; the rest stay pending with their error recorded")


@dead_letters_app.command("discard")
def discard_cmd(
    store: StoreOpt = Store.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, group: GroupOpt = None, ids: IdsOpt = None,
    limit: int = 1000, yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Mark matching records discarded (kept for audit, no longer processed nor blocking their key)."""
    engine = engine_for(load_settings(url, schema))
    filters = _filters(status, event_type, key, error_class, None, None, group, ids)
    with engine.connect() as conn:
        count = len(list_records(conn, store, filters, limit=limit))
    if count == 0:
        out.print("nothing matches")
        return
    if not yes and not typer.confirm(f"discard {count} {store.value} dead letter(s)?"):
        raise typer.Abort()
    with engine.begin() as conn:
        done = discard(conn, store, filters, limit=limit, by=getpass.getuser())
    out.print(f"discarded {len(done)}")
