"""Markdown for the CLI reference, generated from the Typer app (:data:`kafkaguard.cli.app.app`).

Every command and sub-command, depth first in the order the app lists them: its help text, its usage
line, and a table of its arguments and options (names, type, default, environment variable, help).
Hidden commands and options are left out, as ``--help`` leaves them out.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import typer.main
from typer.core import TyperArgument, TyperGroup

from kafkaguard.cli.app import app

# Typer (0.2x) builds its commands on its own copy of click: the objects below are typed loosely on
# purpose and only their documented attributes are read (name, help, opts, default, envvar, ...).


@dataclass
class Command:
    path: tuple[str, ...]
    command: Any
    context: Any


def command_tree() -> Any:
    """The command the Typer app builds (what the ``kafkaguard`` script runs)."""
    return typer.main.get_command(app)


def walk(root: Any = None) -> Iterator[Command]:
    """Every visible command, the root first, sub-commands depth first in the app's order."""
    root = root or command_tree()

    def visit(command: Any, path: tuple[str, ...], parent: Any) -> Iterator[Command]:
        context = command.context_class(command, info_name=path[-1], parent=parent)
        yield Command(path, command, context)
        if isinstance(command, TyperGroup):
            for name in command.list_commands(context):
                sub = command.get_command(context, name)
                if sub is not None and not sub.hidden:
                    yield from visit(sub, (*path, name), context)

    yield from visit(root, ("kafkaguard",), None)


_MARKUP = re.compile(r"\[/?(?:bold|dim|italic|underline|red|green|yellow|blue|cyan|magenta)\]")


def _text(help_text: str | None) -> str:
    """Help text without Rich markup tags, ``\\b`` markers and trailing whitespace."""
    return _MARKUP.sub("", (help_text or "").replace("\b", "")).strip()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _default(param: Any) -> str:
    value = param.default
    if callable(value):
        return "computed"
    if isinstance(value, enum.Enum):
        value = value.value
    if getattr(param, "is_flag", False):
        if param.secondary_opts:
            return f"`{param.opts[0] if value else param.secondary_opts[0]}`"
        return "on" if value else "off"
    if value is None or value == () or value == []:
        return ""
    return f"`{value}`"


def _envvars(param: Any) -> str:
    env = param.envvar
    if not env:
        return ""
    names = [env] if isinstance(env, str) else list(env)
    return "<br>".join(f"`{name}`" for name in names)


def _names(param: Any) -> str:
    if isinstance(param, TyperArgument):
        return (
            f"`{(param.metavar or param.name or '').upper()}` (argument{', repeatable' if param.nargs == -1 else ''})"
        )
    opts = [*param.opts, *param.secondary_opts]
    text = ", ".join(f"`{o}`" for o in opts)
    if getattr(param, "multiple", False):
        text += " (repeatable)"
    if param.required:
        text += " **required**"
    return text


def _annotation_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        return " \\| ".join(_annotation_text(m) for m in members)
    if origin in (list, tuple):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return _annotation_text(args[0]) if args else "text"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    names = {str: "text", int: "integer", float: "number", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    return _cell(getattr(annotation, "__name__", str(annotation)).lower())


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    return _annotation_text(annotation) if annotation is not None else ""


def render_command(item: Command) -> str:
    """One command's section: heading, help, usage, parameters."""
    command, context = item.command, item.context
    depth = min(len(item.path), 4)
    lines = [f"{'#' * (depth + 1)} `{' '.join(item.path)}`", ""]
    text = _text(command.help)
    if text:
        lines += [text, ""]
    pieces = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), " ".join(command.collect_usage_pieces(context)))
    lines += ["```text", f"{' '.join(item.path)} {pieces}".rstrip(), "```", ""]
    params = [p for p in command.get_params(context) if not getattr(p, "hidden", False) and p.name != "help"]
    if params:
        lines += [
            "| argument / option | type | default | environment | description |",
            "| --- | --- | --- | --- | --- |",
        ]
        for param in params:
            help_text = _text(getattr(param, "help", None))
            lines.append(
                f"| {_names(param)} | {_type(param)} | {_default(param)} | {_envvars(param)} | {_cell(help_text)} |"
            )
        lines.append("")
    if isinstance(command, TyperGroup):
        subs = [
            name
            for name in command.list_commands(context)
            if not (command.get_command(context, name) or command).hidden
        ]
        if subs:
            lines += ["Commands: " + ", ".join(f"`{name}`" for name in subs) + ".", ""]
    return "\n".join(lines)


def render() -> str:
    """The whole CLI reference."""
    return "\n".join(render_command(item) for item in walk())
