"""Checks of one shell command line from the docs: is the program known, does ``kafkaguard`` accept it."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import typer.main

from kafkaguard.cli.app import app

ROOT = Path(__file__).resolve().parents[2]

BUILTINS = frozenset(
    {"export", "eval", "cd", "echo", "set", "unset", "source", ".", "true", "false", "test", "[", "read", "wait",
     "kill", "printf", "exit"}
)  # fmt: skip
"""Shell builtins a documented block may use."""

SAFE_TO_RUN: tuple[tuple[str, ...], ...] = (("config", "show"),)
"""``kafkaguard`` commands that only read the settings: run for real (with ``--help`` anywhere, any command is)."""


class UnknownCommand(AssertionError):
    """A documented command line that would not work as written."""


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, flags=re.MULTILINE))


def parse_kafkaguard(args: list[str]) -> tuple[str, ...]:
    """Parse ``kafkaguard ARGS`` with the Typer app without running it; return the command path.

    Raises :class:`UnknownCommand` with the app's own message for an unknown command or option, a
    missing argument or a bad value.
    """
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    try:
        context = command.make_context("kafkaguard", list(args), resilient_parsing=False)
        while hasattr(command, "resolve_command"):
            rest = [*getattr(context, "_protected_args", []), *context.args]
            if not rest:
                break
            name, command, rest = command.resolve_command(context, rest)
            path.append(name)
            context = command.make_context(name, rest, parent=context)
    except Exception as exc:
        if type(exc).__name__ == "Exit" and getattr(exc, "exit_code", 1) == 0:  # --help
            return tuple(path)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise UnknownCommand(f"kafkaguard {' '.join(args)}: {message}") from None
    return tuple(path)


def should_run(args: list[str], path: tuple[str, ...]) -> bool:
    """Whether a parsed kafkaguard command is cheap and read-only enough to run in the test."""
    return "--help" in args or path in SAFE_TO_RUN or not args


def _module_exists(module: str, roots: tuple[Path, ...]) -> bool:
    """A module of the repository or of ``roots`` (the block's folder), or an installed one."""
    for root in (ROOT, *roots):
        local = root.joinpath(*module.split("."))
        if local.with_suffix(".py").is_file() or (local / "__init__.py").is_file():
            return True
    if module.split(".")[0] in {"examples", "tests", "bench"}:
        return False
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package that does not exist
        return False


def _program_exists(program: str) -> bool:
    name = Path(program).name
    return shutil.which(name) is not None or (Path(sys.executable).parent / name).exists()


def _check_json_body(words: list[str]) -> None:
    """curl with ``-H 'content-type: application/json'``: each ``-d`` body must be JSON."""
    if not any(w.lower().replace(" ", "") == "content-type:application/json" for w in words):
        return
    for flag, body in itertools.pairwise(words):
        if flag in ("-d", "--data") and body.startswith("@"):
            continue  # curl reads the body from that file (written by the block's previous lines)
        if flag in ("-d", "--data", "--data-raw"):
            try:
                json.loads(body)
            except ValueError as exc:
                raise UnknownCommand(f"curl body is not JSON ({exc}): {body}") from None


def check(words: list[str], roots: tuple[Path, ...] = ()) -> str:
    """Check one simple command; return what it was (``kafkaguard``, ``python -m``, ``program``...).

    ``roots``: folders besides the repository where a documented module may live (``file`` blocks).
    """
    program = Path(words[0]).name
    if words[0] in BUILTINS:
        return "builtin"
    if program == "make":
        targets = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        missing = sorted(set(targets) - makefile_targets())
        if missing:
            raise UnknownCommand(f"make: no target {missing} in the Makefile")
        return "make"
    if re.fullmatch(r"python(3(\.\d+)?)?", program) and len(words) > 2 and words[1] == "-m":
        if words[2] == "kafkaguard":
            parse_kafkaguard(words[3:])
            return "kafkaguard"
        if not _module_exists(words[2], roots):
            raise UnknownCommand(f"python -m {words[2]}: no such module")
        return "python -m"
    if program == "kafkaguard":
        parse_kafkaguard(words[1:])
        return "kafkaguard"
    if program == "uvicorn":
        targets = [w for w in words[1:] if ":" in w and not w.startswith("-")]
        for target in targets:
            if not _module_exists(target.split(":")[0], roots):
                raise UnknownCommand(f"uvicorn {target}: no such module")
        return "uvicorn"
    if not _program_exists(words[0]):
        raise UnknownCommand(f"unknown program {words[0]!r} (not a builtin, not on PATH, not in the venv)")
    if program == "curl":
        _check_json_body(words)
    return "program"
