"""``kafkaguard config show``: the settings in effect, secrets masked, each with where it came from."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from kafkaguard.cli.common import print_json
from kafkaguard.settings import CONFIG_ENV, EffectiveSetting, explain
from kafkaguard.settings_sources import config_file

config_app = typer.Typer(help="Inspect kafkaguard's settings.", no_args_is_help=True)

_ALIGN_MAX = 72  # a longer `key = value` does not push every source comment further right


def _line(row: EffectiveSetting, width: int) -> str:
    assignment = f"{row.key} = {json.dumps(row.value)}"
    return f"{assignment:<{width}}  # {row.source.label}"


@config_app.command("show")
def show(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (key, env, value, source, origin) for scripts.")
    ] = False,
) -> None:
    """Print every setting in effect (TOML key = value, secrets masked) and its source: default, env VAR or file:key.

    Fails with one line, like every command, when a KAFKAGUARD_* variable or a key of the file is no setting.
    """
    _, rows = explain()
    file = config_file(os.environ)
    if as_json:
        print_json(
            {
                "config_file": None if file is None else str(file),
                "settings": [
                    {"key": r.key, "env": r.env, "value": r.value, "source": r.source.kind, "origin": r.source.origin}
                    for r in rows
                ],
            }
        )
        return
    typer.echo(f"# settings file: {file}" if file is not None else f"# no settings file ({CONFIG_ENV} is not set)")
    width = min(_ALIGN_MAX, max(len(f"{r.key} = {json.dumps(r.value)}") for r in rows))
    for row in rows:
        typer.echo(_line(row, width))
