"""The ``kafkaguard`` command: one Typer app with a sub-app per area, and its one error boundary.

:func:`main` runs the app without click's standalone mode, so that every exception comes back
here and leaves as one line on stderr with exit code 2 (usage) or 1 (failure); see
:mod:`kafkaguard.cli.errors`. ``kafkaguard --debug ...`` (or ``KAFKAGUARD_DEBUG=1``) prints the
traceback before that line.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import typer

from kafkaguard.cli.chaos import chaos
from kafkaguard.cli.cleanup import cleanup
from kafkaguard.cli.config import config_app
from kafkaguard.cli.console import console
from kafkaguard.cli.consume import consume
from kafkaguard.cli.db import db_app
from kafkaguard.cli.dead_letters import dead_letters_app
from kafkaguard.cli.debezium import debezium_app
from kafkaguard.cli.dev import dev_app
from kafkaguard.cli.errors import FAILURE, Failure, describe, secrets_of
from kafkaguard.cli.forward import forward
from kafkaguard.cli.relay import relay
from kafkaguard.cli.restore import restore_app

DEBUG_ENV = "KAFKAGUARD_DEBUG"
"""Environment variable that turns on ``--debug`` (tracebacks) from the start."""

app = typer.Typer(
    name="kafkaguard",
    help="Carry domain events from a database through Kafka into other databases, losing none.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(dev_app, name="dev")
app.add_typer(db_app, name="db")
app.command("relay")(relay)
app.add_typer(restore_app, name="restore")
app.add_typer(dead_letters_app, name="dead-letters")
app.command("cleanup")(cleanup)
app.command("consume")(consume)
app.command("forward")(forward)
app.command("chaos")(chaos)
app.command("console")(console)
app.add_typer(config_app, name="config")
app.add_typer(debezium_app, name="debezium")


@dataclass
class CliState:
    """What the global options set for one invocation (owned by :func:`run`)."""

    debug: bool = False


def _print_version(value: bool) -> None:
    if value:
        from kafkaguard import __version__

        typer.echo(f"kafkaguard {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", envvar=DEBUG_ENV, help="Print the traceback of an error.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Carry domain events from a database through Kafka into other databases, losing none."""
    if isinstance(ctx.obj, CliState):
        ctx.obj.debug = debug


def run(args: Sequence[str] | None = None) -> int:
    """Run the command line ``args`` (default ``sys.argv[1:]``); return the exit code.

    Never raises except SystemExit from a command itself: errors are printed as one line on
    stderr (:func:`kafkaguard.cli.errors.describe`).
    """
    state = CliState(debug=_debug_from_env())
    try:
        code = app(args=list(args) if args is not None else None, prog_name="kafkaguard",
                   standalone_mode=False, obj=state)  # fmt: skip
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return FAILURE
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, and keep Python from complaining at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout until the process ends
        return FAILURE
    except Exception as exc:  # noqa: BLE001 - the one boundary where every error becomes one line
        argv = list(args) if args is not None else sys.argv[1:]
        try:
            failure = describe(exc, secrets_of(argv, os.environ))
        except Exception:  # noqa: BLE001 - describing must not be what fails
            failure = Failure(f"unexpected {type(exc).__name__} (run `kafkaguard --debug ...` for details)", FAILURE)
        if state.debug:
            traceback.print_exception(exc, file=sys.stderr)
        if failure.help:
            if failure.message:
                typer.echo(failure.message, err=True)
        else:
            typer.echo(f"{typer.style('error:', fg='red', bold=True)} {failure.message}", err=True)
        return failure.exit_code
    # Without standalone mode, click returns (not raises) the code of a `typer.Exit(n)`.
    return code if isinstance(code, int) else 0


def _debug_from_env() -> bool:
    """``KAFKAGUARD_DEBUG`` counts from the start: a usage error is raised before the option is read."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def main() -> None:
    """Console-script entry point (``kafkaguard`` and ``python -m kafkaguard``)."""
    sys.exit(run())
