"""``kafkaguard --version`` prints the package version and exits 0 (what an operator checks first)."""

from __future__ import annotations

import pytest

import kafkaguard
from kafkaguard.cli.app import run


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"kafkaguard {kafkaguard.__version__}"
