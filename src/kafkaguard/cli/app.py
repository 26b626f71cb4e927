"""The ``kafkaguard`` command: one Typer app with a sub-app per area."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from kafkaguard.cli.chaos import chaos
from kafkaguard.cli.cleanup import cleanup
from kafkaguard.cli.config import config_app
from kafkaguard.cli.consume import consume
from kafkaguard.cli.db import db_app
from kafkaguard.cli.dead_letters import dead_letters_app
from kafkaguard.cli.dev import dev_app
from kafkaguard.cli.forward import forward
from kafkaguard.cli.relay import relay
from kafkaguard.cli.restore import restore_app
from kafkaguard.errors import KafkaguardError

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
app.add_typer(config_app, name="config")


def main() -> None:
    """Console-script entry point: run the app, turning kafkaguard errors into one red line."""
    try:
        # Without standalone mode, click returns (not raises) the code of a `typer.Exit(n)`.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except KafkaguardError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
