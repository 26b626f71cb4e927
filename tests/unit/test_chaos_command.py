"""``kafkaguard chaos`` finds the checkout's chaos suite (``chaos/`` beside ``src/``), or says in one line that
it runs from a checkout only (exit 2). No run is started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import chaos
from kafkaguard.cli.app import run
from kafkaguard.cli.chaos import find_suite
from kafkaguard.cli.errors import USAGE, UsageProblem

CHECKOUT = Path(chaos.__file__).resolve().parent.parent


def _no_chaos_importable(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """As outside a checkout: the repository root is off ``sys.path`` and no ``chaos`` module is loaded."""
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != CHECKOUT])
    for name in [m for m in sys.modules if m == "chaos" or m.startswith("chaos.")]:
        monkeypatch.delitem(sys.modules, name)


def test_the_suite_is_the_checkouts_chaos_folder_not_the_package() -> None:
    import kafkaguard

    assert (CHECKOUT / "src" / "kafkaguard").is_dir()
    assert not (Path(kafkaguard.__file__).parent / "chaos").exists()


def test_found_in_the_checkout_even_when_not_on_sys_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_chaos_importable(monkeypatch, tmp_path)
    suite = find_suite([tmp_path, CHECKOUT])
    assert Path(suite.__file__).resolve() == CHECKOUT / "chaos" / "command.py"
    assert callable(suite.run)


def test_outside_a_checkout_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_chaos_importable(monkeypatch, tmp_path)
    with pytest.raises(UsageProblem, match=r"^kafkaguard chaos runs from a checkout of the repository: "):
        find_suite([tmp_path])

    monkeypatch.setattr("kafkaguard.cli.chaos._checkouts", lambda: [tmp_path])
    assert run(["chaos", "--profile", "quick"]) == USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "kafkaguard chaos runs from a checkout of the repository: " in err
    assert str(tmp_path) in err


def test_an_unknown_profile_is_a_usage_error_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["chaos", "--profile", "huge"]) == USAGE
    assert "profile must be one of ['full', 'quick']" in capsys.readouterr().err


def test_an_unknown_scenario_is_a_usage_error_before_any_server_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["chaos", "--scenario", "nope"]) == USAGE
    assert "unknown scenario(s) ['nope']" in capsys.readouterr().err
