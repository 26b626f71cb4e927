"""CLI help and output: env hints visible, one flag name per concept, full-width tables when piped."""

from __future__ import annotations

import re

import pytest

from kafkaguard.cli.app import run
from kafkaguard.cli.common import PIPED_WIDTH, print_table

HELP_WITH_HINTS = [
    ["relay"],
    ["consume"],
    ["db", "upgrade"],
    ["dead-letters", "list"],
    ["restore", "listener"],
]


@pytest.mark.parametrize("command", HELP_WITH_HINTS, ids=" ".join)
def test_env_hints_are_visible_in_help(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # one option per line, so a hint is not wrapped
    assert run([*command, "--help"]) == 0
    shown = capsys.readouterr().out
    assert "[env KAFKAGUARD_" in shown, shown  # Rich used to eat "[env ...]" as markup
    assert "\\[" not in shown


@pytest.mark.parametrize("command", [["relay"], ["consume"], ["forward"]], ids=" ".join)
def test_one_bootstrap_flag_everywhere_the_old_one_hidden(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert run([*command, "--help"]) == 0
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", capsys.readouterr().out))
    assert "--bootstrap-servers" in options and "--bootstrap" not in options


def test_the_old_and_the_new_bootstrap_flag_together_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["relay", "--bootstrap", "a:1", "--bootstrap-servers", "b:2"])
    assert code == 2
    assert "pass --bootstrap-servers only" in capsys.readouterr().err


def test_tables_are_not_cut_to_80_columns_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    row = {name: f"{name}-value-of-some-length" for name in ("id", "consumer_group", "type", "key", "error")}
    print_table([row], list(row))
    lines = capsys.readouterr().out.splitlines()
    body = next(line for line in lines if "consumer_group-value-of-some-length" in line)
    assert all(value in body for value in row.values())  # one line, nothing wrapped or cut
    assert 80 < len(body) < PIPED_WIDTH
