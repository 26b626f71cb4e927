"""The README's example test of a user's handler (``test_welcome.py``, on ``kafkaguard.testing.Pipeline``)
passes in under a second, in this process, with no Kafka and no PostgreSQL (the unit network guard)."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs import codeblocks as cb

ROOT = Path(__file__).resolve().parents[2]
BUDGET_S = 1.0


@pytest.fixture
def readme_files(tmp_path: Path) -> Iterator[Path]:
    """The README's ``file`` blocks written to ``tmp_path``, importable; modules forgotten afterwards."""
    every = cb.read_blocks(ROOT, "README.md")
    [test_block] = [b for b in every if b.directives.get("file") == "test_welcome.py"]
    for name, text in cb.files_before(test_block, every).items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for name in set(sys.modules) - before:
            if name == "test_welcome" or name.split(".")[0] == "signups":
                del sys.modules[name]


def test_the_readme_kit_example_passes_in_under_a_second(readme_files: Path) -> None:
    module = importlib.import_module("test_welcome")
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert tests, "the README example defines no test"
    started = time.perf_counter()
    for test in tests:
        test()
    took = time.perf_counter() - started
    assert took < BUDGET_S, f"the README kit example took {took:.2f} s (budget {BUDGET_S} s)"
