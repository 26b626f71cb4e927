"""Prints what the code-block test did with every block: counts by kind, and each skip with its reason."""

from __future__ import annotations

from collections import Counter
from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.docs.test_code_blocks import BLOCKS, DOCUMENTS

    reports = [r for key in ("passed", "failed", "error") for r in terminalreporter.stats.get(key, [])]
    if not any(getattr(r, "nodeid", "").startswith("tests/docs/test_code_blocks") for r in reports):
        return
    counts = Counter(block.kind for block in BLOCKS if block.skip_reason is None)
    skipped = [block for block in BLOCKS if block.skip_reason is not None]
    terminalreporter.section("documentation code blocks")
    terminalreporter.line(
        f"{len(BLOCKS)} blocks in {len(DOCUMENTS)} files: {counts['python']} python run, "
        f"{counts['shell']} shell checked, {counts['toml']} toml loaded, {counts['json']} json parsed, "
        f"{counts['other']} not executable (text, yaml, ...), {len(skipped)} skipped"
    )
    for block in skipped:
        terminalreporter.line(f"  skipped {block.where} ({block.lang}): {block.skip_reason}")
