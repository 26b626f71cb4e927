"""``kafkaguard dead-letters``: list, show, replay, discard and count dead letters.

Three stores: ``listener`` and ``publisher`` dead letters, and ``last-resort`` records (the bytes
of a message whose normal dead letter the database refused; list, show and stats only). Filters
are checked before a query runs: one that cannot apply to the store is a usage error (exit 2),
never silently ignored (``--group`` with the publisher store used to match every record).
"""

from __future__ import annotations

import getpass
import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from sqlalchemy import Engine

from kafkaguard.cli.common import engine_for, load_settings, print_json, print_table, say
from kafkaguard.cli.errors import UsageProblem
from kafkaguard.cli.handlers import load_handlers
from kafkaguard.cli.last_resort import with_readable_bytes
from kafkaguard.cli.listener_restore import configured_group
from kafkaguard.cli.replay import ReplayRequest, check, execute, find_candidates, unknown_group
from kafkaguard.db.columns import DeadLetterStatus
from kafkaguard.db.readiness import RESTORE_TABLES
from kafkaguard.errors import DeadLetterNotFoundError
from kafkaguard.logtext import short
from kafkaguard.stores.dead_letter_queries import (
    Filters,
    Store,
    discard,
    list_records,
    reset_to_pending,
    show_record,
    stats,
)
from kafkaguard.stores.last_resort import LastResortFilters, list_last_resort, show_last_resort, stats_last_resort

dead_letters_app = typer.Typer(help="Inspect and act on publisher, listener and last-resort dead letters.")


@dead_letters_app.callback()
def _quiet_logs(ctx: typer.Context) -> None:
    """Inspect and act on publisher, listener and last-resort dead letters."""
    # An operator command reports in its own lines (the replay summary names each failed record);
    # the components' warnings would repeat them. `kafkaguard --debug` shows them.
    root = ctx.find_root().obj
    debug = bool(getattr(root, "debug", False))
    logging.basicConfig(level=logging.WARNING if debug else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")


class StoreName(StrEnum):
    """The ``--store`` choices."""

    LISTENER = "listener"
    PUBLISHER = "publisher"
    LAST_RESORT = "last-resort"

    @property
    def store(self) -> Store:
        """The dead-letter store (not for ``last-resort``, which has its own queries)."""
        if self is StoreName.LAST_RESORT:
            raise UsageProblem("last-resort records can be listed, shown and counted only; they keep raw bytes")
        return Store(self.value)


StoreOpt = Annotated[StoreName, typer.Option("--store", help="listener, publisher or last-resort.")]
UrlOpt = Annotated[str | None, typer.Option("--url", help="Database URL \\[env KAFKAGUARD_DATABASE_URL].")]
SchemaOpt = Annotated[str | None, typer.Option("--schema", help="Schema of kafkaguard's tables.")]
StatusOpt = Annotated[DeadLetterStatus | None, typer.Option(help="pending | parked | restored | failed | discarded")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Event type, e.g. post.created.")]
KeyOpt = Annotated[str | None, typer.Option(help="Ordering key.")]
ErrorOpt = Annotated[str | None, typer.Option("--error-class", help="Error class name.")]
SinceOpt = Annotated[datetime | None, typer.Option(help="Created at or after (ISO time).")]
UntilOpt = Annotated[datetime | None, typer.Option(help="Created before (ISO time).")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Consumer group (listener and last-resort stores).")]
IdsOpt = Annotated[list[int] | None, typer.Option("--id", help="Record id (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
LimitOpt = Annotated[int, typer.Option(min=1, help="At most this many records.")]


def _check_options(
    store: StoreName, *, group: str | None = None, event_type: str | None = None, error_class: str | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> None:  # fmt: skip
    """Refuse filters that cannot apply to ``store`` (they would be ignored and match everything)."""
    if group is not None and store is StoreName.PUBLISHER:
        raise UsageProblem("--group applies to --store listener or last-resort: publisher dead letters have no group")
    if store is StoreName.LAST_RESORT:
        for option, value in (("--type", event_type), ("--error-class", error_class)):
            if value is not None:
                raise UsageProblem(f"{option} does not apply to --store last-resort (its records keep bytes only)")
    if since is not None and until is not None and _comparable(since) >= _comparable(until):
        raise UsageProblem("--since must be earlier than --until")


def _comparable(value: datetime) -> float:
    return value.timestamp()  # naive values are local time, as PostgreSQL reads them here


def _filters(
    status: DeadLetterStatus | None, event_type: str | None, key: str | None, error_class: str | None,
    since: datetime | None, until: datetime | None, group: str | None, ids: list[int] | None,
) -> Filters:  # fmt: skip
    return Filters(
        status.value if status else None, event_type, key, error_class, since, until, tuple(ids or ()), group
    )


def _operator() -> str:
    """Who acts, for the records' history (containers may have no user entry)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def _engine(url: str | None, schema: str | None) -> Engine:
    return engine_for(load_settings(url, schema))


@dead_letters_app.command("list")
def list_cmd(
    store: StoreOpt = StoreName.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None, group: GroupOpt = None,
    limit: LimitOpt = 100, as_json: JsonOpt = False, url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """List dead letters matching the filters, oldest first."""
    _check_options(store, group=group, event_type=event_type, error_class=error_class, since=since, until=until)
    engine = _engine(url, schema)
    if store is StoreName.LAST_RESORT:
        lr = LastResortFilters(status.value if status else None, key, since, until, group)
        with engine.connect() as conn:
            rows = [with_readable_bytes(r, ("raw_key",)) for r in list_last_resort(conn, lr, limit=limit)]
        if as_json:
            print_json(rows)
        else:
            cols = ["id", "store", "status", "consumer_group", "topic", "partition", "offset", "outbox_id",
                    "raw_key_text", "error", "created_at"]  # fmt: skip
            print_table(rows, cols, title=f"last-resort records ({len(rows)})")
        return
    filters = _filters(status, event_type, key, error_class, since, until, group, None)
    with engine.connect() as conn:
        rows = list_records(conn, store.store, filters, limit=limit)
    if as_json:
        print_json(rows)
    else:
        cols = ["id", "status", "type", "key", "attempts", "error_class", "next_attempt_at", "created_at"]
        if store is StoreName.LISTENER:
            cols.insert(2, "consumer_group")
        print_table(rows, cols, title=f"{store.value} dead letters ({len(rows)})")


@dead_letters_app.command("show")
def show_cmd(
    record_id: Annotated[int, typer.Argument(help="The record's id (see `list`).")],
    store: StoreOpt = StoreName.LISTENER, url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Show every field of one record, history included (always JSON): raw bytes as hex and, where
    they are UTF-8, as text (``raw_key_text``, ``raw_value_text``); headers decoded from their exact
    bytes (``raw_headers_decoded``)."""
    engine = _engine(url, schema)
    with engine.connect() as conn:
        if store is StoreName.LAST_RESORT:
            row = show_last_resort(conn, record_id)
        else:
            row = show_record(conn, store.store, record_id)
    if row is None:
        raise DeadLetterNotFoundError(
            f"no {store.value} record with id {record_id} (find ids with `kafkaguard dead-letters list --store "
            f"{store.value}`)"
        )
    print_json(with_readable_bytes(row))


@dead_letters_app.command("stats")
def stats_cmd(
    store: StoreOpt = StoreName.LISTENER, event_type: TypeOpt = None, group: GroupOpt = None, as_json: JsonOpt = False,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Counts grouped by status and error class."""
    _check_options(store, group=group, event_type=event_type)
    engine = _engine(url, schema)
    with engine.connect() as conn:
        if store is StoreName.LAST_RESORT:
            rows = stats_last_resort(conn, LastResortFilters(consumer_group=group))
            columns = ["status", "store", "error_class", "count", "oldest"]
        else:
            rows = stats(conn, store.store, _filters(None, event_type, None, None, None, None, group, None))
            columns = ["status", "error_class", "count", "oldest"]
    if as_json:
        print_json(rows)
    else:
        print_table(rows, columns, title=f"{store.value} dead letters")


@dead_letters_app.command("replay")
def replay_cmd(
    store: StoreOpt = StoreName.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, since: SinceOpt = None, until: UntilOpt = None, group: GroupOpt = None,
    ids: IdsOpt = None, limit: LimitOpt = 1000,
    rate: Annotated[float, typer.Option(min=0.0, help="At most this many records per second (0 = unlimited).")] = 0.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show what would be replayed.")] = False,
    reset_only: Annotated[bool, typer.Option("--reset-only", help="Only make them due (for the restore job).")] = False,
    app: Annotated[str | None, typer.Option(help="module:registry of the handlers (listener store).")] = None,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Return matching pending/failed records to pending, due now, and (unless --reset-only) restore them now.

    Listener records are restored under their own consumer group (--group chooses when they span
    several) with the handlers of --app. Everything is checked before a record changes. Exit 0 when
    every record was restored, 1 when some were not (one line says which)."""
    _check_options(store, group=group, event_type=event_type, error_class=error_class, since=since, until=until)
    target = store.store
    if status is not None and status.value not in ("pending", "failed"):
        raise UsageProblem(f"replay takes pending or failed records, not --status {status.value}")
    if target is Store.PUBLISHER and app is not None:
        raise UsageProblem("--app applies to --store listener: publisher dead letters are republished, not handled")
    if target is Store.LISTENER and app is None and not (reset_only or dry_run):
        raise UsageProblem(
            "replaying listener dead letters runs their handlers: pass --app module:registry, "
            "or --reset-only to only make them due for `kafkaguard restore listener`"
        )
    registry = load_handlers(app) if target is Store.LISTENER and app is not None else None
    settings = load_settings(url, schema)
    engine = engine_for(settings, tables=RESTORE_TABLES)
    if target is Store.LISTENER and group is None:
        group = configured_group(settings)
    filters = _filters(status, event_type, key, error_class, since, until, group, ids)
    request = ReplayRequest(
        target, filters, max(limit, len(set(ids or ()))), rate, app=app, registry=registry, by=_operator()
    )
    with engine.connect() as conn:
        candidates = find_candidates(conn, target, filters, limit=request.limit)
    if not candidates and target is Store.LISTENER and group is not None:
        refusal = unknown_group(engine, group)
        if refusal is not None:
            raise refusal
    checked = check(engine, request, candidates)  # raises before anything changes
    if not candidates:
        where = f" of consumer group {short(group, 60)}" if group else ""
        say(f"nothing to replay: no pending or failed {target.value} dead letters{where} match")
        return
    under = f" under group {checked.group}" if checked.group else ""
    if dry_run:
        rows = [{"id": c.id, "status": c.status, "consumer_group": c.group, "type": c.type, "key": c.key}
                for c in candidates]  # fmt: skip
        print_table(rows, ["id", "status", "consumer_group", "type", "key"], title="would replay")
        also = f" (and {checked.others_of_keys} other open record(s) of their keys)" if checked.others_of_keys else ""
        say(f"would reset and restore {len(candidates)} {target.value} dead letter(s){under}{also}")
        return
    if reset_only:
        with engine.begin() as conn:
            done = reset_to_pending(
                conn, target, Filters(ids=tuple(c.id for c in candidates), consumer_group=checked.group),
                limit=len(candidates), by=request.by,
            )  # fmt: skip
        say(f"{len(done)} {target.value} dead letter(s) reset to pending, due now{under}")
        return
    summary = execute(settings, engine, request, checked)
    if summary.complete:
        say(summary.line())
        return
    say(f"error: {summary.line()}", error=True)
    raise typer.Exit(1)


@dead_letters_app.command("discard")
def discard_cmd(
    store: StoreOpt = StoreName.LISTENER, status: StatusOpt = None, event_type: TypeOpt = None, key: KeyOpt = None,
    error_class: ErrorOpt = None, group: GroupOpt = None, ids: IdsOpt = None, limit: LimitOpt = 1000,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    url: UrlOpt = None, schema: SchemaOpt = None,
) -> None:  # fmt: skip
    """Mark matching records discarded (kept for audit, no longer processed nor blocking their key)."""
    _check_options(store, group=group, event_type=event_type, error_class=error_class)
    target = store.store
    engine = _engine(url, schema)
    filters = _filters(status, event_type, key, error_class, None, None, group, ids)
    with engine.connect() as conn:
        count = len([r for r in list_records(conn, target, filters, limit=limit) if r["status"] != "discarded"])
    if count == 0:
        say("nothing to discard: no matching records that are not discarded already")
        return
    if not yes and not typer.confirm(f"discard {count} {target.value} dead letter(s)?"):
        raise typer.Abort()
    with engine.begin() as conn:
        done = discard(conn, target, filters, limit=limit, by=_operator())
    say(f"discarded {len(done)}")
