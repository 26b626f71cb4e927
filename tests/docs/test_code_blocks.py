"""Every fenced code block of the README, examples/README.md and the docs site runs or is checked.

- ``python`` blocks run as programs in a subprocess against the real stack: the environment has
  ``KAFKAGUARD_BOOTSTRAP_SERVERS`` (the session's broker) and ``KAFKAGUARD_DATABASE_URL`` (a fresh
  schema with kafkaguard's tables, first on the search_path); the working folder is empty but for
  the document's ``file`` blocks above, and it and the repository are on the path (``examples.*``
  imports); ``__name__`` is ``"__docs__"``, so an ``if __name__ == "__main__":`` part is not run.
  A ``file`` block named ``test_*.py`` is a test file: pytest runs it too, and its tests must pass.
- shell blocks: bash syntax; every program known (builtin, Makefile target, module, on PATH or in
  the venv); every ``kafkaguard`` command line parsed by the Typer app; cheap read-only ones
  (``--help``, ``config show``) run; a block marked ``<!-- test: run -->`` runs whole, with the
  environment of a python block.
- ``toml`` blocks are kafkaguard settings files: ``kafkaguard config show`` must accept them.
- ``json`` blocks parse.

A block marked ``<!-- test: skip reason -->`` is not executed; the skips are counted and printed at
the end of the run with their reasons (see conftest.py). New blocks are picked up automatically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kafkaguard.testing.fixtures import TestDatabase
from tests.docs import codeblocks as cb
from tests.docs import commands

ROOT = commands.ROOT

DOCUMENTS: tuple[str, ...] = (
    "README.md",
    "examples/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md") if "_hooks" not in p.parts),
)
"""The Markdown files whose blocks are tested, README first."""

BLOCKS: list[cb.Block] = [block for doc in DOCUMENTS for block in cb.read_blocks(ROOT, doc)]

RUN_TIMEOUT_S = 120
"""Longest a python block or a shell block may run (they are examples: each takes seconds)."""


def _params() -> list[object]:
    """One test per executable block that is not skipped (blocks of other languages are only counted)."""
    return [pytest.param(b, id=b.where) for b in BLOCKS if b.kind != "other" and b.skip_reason is None]


def _base_env(**settings: str) -> dict[str, str]:
    """The test process's environment without its kafkaguard settings, plus ``settings``."""
    from kafkaguard.settings_sources import NON_SETTING_VARIABLES

    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAFKAGUARD_") or k in NON_SETTING_VARIABLES}
    env.pop("KAFKAGUARD_CONFIG", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(settings)
    return env


def _run(argv: list[str], block: cb.Block, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: still running after {RUN_TIMEOUT_S} s: {' '.join(argv)[:200]}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        pytest.fail(f"{block.where}: {' '.join(argv)[:200]} exited {done.returncode}:\n" + "\n".join(tail))
    return done


def test_directives_are_valid() -> None:
    """Every directive is known, every skip has a reason, every ``continue`` has a block to follow."""
    assert BLOCKS, "no code blocks found: the harness reads nothing"
    for block in BLOCKS:
        if block.kind == "python":
            cb.python_program(block, BLOCKS)  # raises for a dangling continue
        assert not ("run" in block.directives and block.kind != "shell"), f"{block.where}: 'run' is for shell blocks"


def _stack_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of a block that runs: the session's broker, a migrated schema, the folder on the path."""
    database: TestDatabase = request.getfixturevalue("migrated_database")
    env = _base_env(
        KAFKAGUARD_BOOTSTRAP_SERVERS=request.getfixturevalue("kafka_bootstrap"), KAFKAGUARD_DATABASE_URL=database.url
    )
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    return env


def _python(block: cb.Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    env = _stack_env(request, tmp_path)
    program = tmp_path / "_docs_block.py"
    program.write_text(cb.python_program(block, BLOCKS), encoding="utf-8")
    runner = f"import runpy; runpy.run_path({str(program)!r}, run_name='__docs__')"
    _run([sys.executable, "-c", runner], block, env, tmp_path)
    name = block.directives.get("file", "")
    if Path(name).name.startswith("test_"):  # a test file: its tests must run and pass too
        done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name], block, env, tmp_path)
        assert " passed" in done.stdout and " failed" not in done.stdout, f"{block.where}: {done.stdout[-500:]}"


def _shell(block: cb.Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    script = cb.shell_script(block)
    syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, f"{block.where}: bash syntax: {syntax.stderr.strip()}"
    lines = list(cb.simple_commands(script))
    assert lines, f"{block.where}: a shell block without a command"
    to_run: list[list[str]] = []
    for words in lines:
        if commands.check(words, roots=(tmp_path,)) == "kafkaguard":
            args = cb.kafkaguard_args(words)
            assert args is not None
            if commands.should_run(args, commands.parse_kafkaguard(args)):
                to_run.append(args)
    if "run" in block.directives:
        _run(["bash", "-euo", "pipefail", "-c", script], block, _stack_env(request, tmp_path), tmp_path)
        return
    for args in to_run:
        _run([sys.executable, "-m", "kafkaguard", *args], block, _base_env(), tmp_path)


def _toml(block: cb.Block, tmp_path: Path) -> None:
    try:
        tomllib.loads(block.code)
    except tomllib.TOMLDecodeError as exc:
        pytest.fail(f"{block.where}: not TOML: {exc}")
    config = tmp_path / "kafkaguard.toml"
    config.write_text(block.code, encoding="utf-8")
    env = _base_env(KAFKAGUARD_CONFIG=str(config))
    _run([sys.executable, "-m", "kafkaguard", "config", "show"], block, env, tmp_path)


def _json(block: cb.Block) -> None:
    try:
        json.loads(block.code)
    except ValueError as exc:
        pytest.fail(f"{block.where}: not JSON: {exc}")


@pytest.mark.parametrize("block", _params())
def test_code_block(block: cb.Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Run or check one block by its language (python blocks get the real Kafka and a migrated database)."""
    for name, text in cb.files_before(block, BLOCKS).items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    if block.kind == "python":
        _python(block, request, tmp_path)
    elif block.kind == "shell":
        _shell(block, request, tmp_path)
    elif block.kind == "toml":
        _toml(block, tmp_path)
    else:
        _json(block)
