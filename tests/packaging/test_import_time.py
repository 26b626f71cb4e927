"""Packaging: ``import kafkaguard`` is cheap and web-framework free; FastAPI and uvicorn are the ``http`` extra."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import kafkaguard

REPO = Path(__file__).resolve().parents[2]
WEB = {"fastapi", "uvicorn", "starlette"}
HEAVY = {"httpx", "rich", "prometheus_client", "typer"}


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter seeing the same kafkaguard as this test (the worktree's src first)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def imported_by(code: str) -> set[str]:
    """The top-level packages ``python -X importtime -c code`` imports."""
    proc = run_python("-X", "importtime", "-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":  # the header line
                names.add(name.split(".")[0])
    assert "kafkaguard" in names
    return names


def test_import_kafkaguard_imports_no_web_framework() -> None:
    modules = imported_by("import kafkaguard")
    assert modules & WEB == set()
    assert modules & HEAVY == set(), "import kafkaguard should stay light: names are imported on first use"


def test_the_library_names_need_no_web_framework() -> None:
    """Publisher, Worker, Relay, the outbox writers: all but the FastAPI helpers and the console work without it."""
    web_names = {"receiving_router", "install_exception_handlers", "create_console_app"}
    names = [n for n in kafkaguard.__all__ if n not in web_names]
    modules = imported_by(f"import kafkaguard; [getattr(kafkaguard, n) for n in {names!r}]")
    assert modules & WEB == set()


def test_receiving_router_without_fastapi_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n    from kafkaguard import receiving_router\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "kafkaguard.receiving_router needs fastapi" in proc.stdout
    assert "pip install 'kafkaguard[http]'" in proc.stdout


def test_the_console_without_jinja2_says_which_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "try:\n    from kafkaguard import create_console_app\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "pip install 'kafkaguard[console]'" in proc.stdout, proc.stdout


def test_lazy_names_resolve_and_dir_is_the_public_api() -> None:
    assert dir(kafkaguard) == sorted(kafkaguard.__all__)
    lazy = set(kafkaguard._LAZY)
    assert lazy <= set(kafkaguard.__all__)
    for name in kafkaguard.__all__:
        value = getattr(kafkaguard, name)
        if name in lazy:
            assert getattr(value, "__name__", name) == name
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = kafkaguard.Nope  # type: ignore[attr-defined]


def test_the_cli_imports_no_web_framework() -> None:
    assert imported_by("import kafkaguard.cli.app") & WEB == set()


# --- metadata ----------------------------------------------------------------------------------------


def project() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as f:
        data = tomllib.load(f)
    return data["project"]  # type: ignore[no-any-return]


def requirement_names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {str(r).split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in requirements}


def test_fastapi_and_uvicorn_are_the_http_extra_and_in_dev() -> None:
    meta = project()
    extras = meta["optional-dependencies"]
    assert isinstance(extras, dict)
    assert requirement_names(meta["dependencies"]) & {"fastapi", "uvicorn", "starlette"} == set()
    assert {"fastapi", "uvicorn"} <= requirement_names(extras["http"])
    assert {"fastapi", "uvicorn"} <= requirement_names(extras["dev"]), "make installs .[dev,bench]: tests need them"


def test_project_metadata_is_complete() -> None:
    meta = project()
    assert meta["license"] == "Apache-2.0"
    assert meta["authors"] and meta["keywords"]
    urls = meta["urls"]
    assert isinstance(urls, dict) and {"Homepage", "Source", "Issues"} <= set(urls)
    classifiers = meta["classifiers"]
    assert isinstance(classifiers, list)
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "the SPDX license expression replaces these"


def test_the_build_writes_nothing_into_the_checkout() -> None:
    """hatchling builds from src/ into pip's temporary folder (setuptools wrote build/ and *.egg-info)."""
    with (REPO / "pyproject.toml").open("rb") as f:
        data = tomllib.load(f)
    assert data["build-system"]["build-backend"] == "hatchling.build"
    assert data["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/kafkaguard"]


def test_names_are_imported_on_first_use_only() -> None:
    code = (
        "import sys, kafkaguard, kafkaguard.testing\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('kafkaguard'))\n"
        "assert loaded == ['kafkaguard', 'kafkaguard.errors', 'kafkaguard.testing'], loaded\n"
        "from kafkaguard import KafkaguardSettings, Worker\n"
        "assert 'kafkaguard.consumer.worker' in sys.modules and 'pytest' not in sys.modules\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_settings_load_no_component() -> None:
    # kafkaguard.settings assembles the components' settings models; importing consumer.settings
    # runs consumer/__init__.py, which must stay lazy (no worker, stores or restore loaded).
    code = (
        "import sys, kafkaguard.settings\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('kafkaguard.consumer.worker', 'kafkaguard.stores',"
        " 'kafkaguard.restore.listener', 'kafkaguard.db')))\n"
        "assert not heavy, heavy\n"
    )
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
