"""The wheel builds from a read-only checkout without writing into it, and carries complete metadata."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")}


def _read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_wheel_from_a_read_only_checkout_writes_nothing_and_has_full_metadata(tmp_path: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    checkout = tmp_path / "checkout"
    for name in files:
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    _read_only(checkout)
    before = _tree(checkout)
    out = tmp_path / "dist"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(checkout)],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert _tree(checkout) == before, "building the wheel wrote into the checkout"
    finally:
        for p in [checkout, *checkout.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    (wheel,) = out.glob("kafkaguard-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(zf.read(meta_name).decode())
    assert "kafkaguard/py.typed" in names
    assert "kafkaguard/migrations/versions/0002_total_inputs.py" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/", "bench/", "chaos/", "kafkaguard/chaos/"))]
    assert meta["License-Expression"] == "Apache-2.0" or meta["License"]
    urls = dict(v.split(", ", 1) for v in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in meta.get_all("Classifier") or [])
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"http", "asyncpg"} <= extras
