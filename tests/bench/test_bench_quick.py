"""The quick profile of ``make bench``: every part at tiny sizes, so the harness cannot rot.

It asserts that each part produced sane numbers and its JSON report — not the performance targets
(those need the full sizes and a quiet machine; see ``bench/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import run as bench_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_every_part_runs_at_quick_sizes(tmp_path: Path) -> None:
    results = bench_run.main(["--quick", "--out", str(tmp_path)])
    assert set(results) == set(bench_run.parts(bench_run.QUICK, "quick"))
    for name in results:
        doc = json.loads((tmp_path / f"{name}-quick.json").read_text())
        assert doc["rows"], f"{name}: empty table"
        assert doc["machine"]["cores"]

    relay = results["relay"].data
    for key in ("producer", "database", "relay1", "relay2", "debezium"):
        assert _positive(relay["median"][key]), (key, relay["median"])
    assert 0 < relay["relay1_ratio"] < 20
    assert relay["peer_status"] == "ran", relay["peer_status"]  # the bench extra is part of the venv
    assert _positive(relay["median"]["peer"])

    consumer = results["consumer"].data
    for key in ("raw_single", "kg_single", "raw_batch", "kg_batch"):
        assert _positive(consumer["median"][key]), (key, consumer["median"])

    for rate in results["latency"].data["rates"]:
        assert rate["achieved"] > 0.8 * rate["offered"], rate
        assert 0 < rate["applied_p50"] <= rate["applied_p99"] < 60_000, rate
        assert rate["kafka_p50"] <= rate["applied_p50"], rate

    for stage in results["rss"].data["stages"]:
        assert 20 < stage["relay_peak_mb"] < 2000, stage
        assert 20 < stage["consumer_peak_mb"] < 2000, stage

    write = results["write_path"].data["median_rps"]
    assert _positive(write["with_outbox"]) and _positive(write["without_outbox"]), write
