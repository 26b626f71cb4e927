"""The quick profile of ``make bench``: every part at tiny sizes, so the harness cannot rot.

It asserts that each part produced sane numbers and its JSON report — not the performance targets
(those need the full sizes and a quiet machine; see ``bench/RESULTS.md``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import consumer_throughput
from bench import run as bench_run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


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
    assert relay["txoutbox_status"] == "ran", relay["txoutbox_status"]  # the second peer, same extra
    assert _positive(relay["median"]["txoutbox"])

    consumer = results["consumer"].data
    assert set(consumer["median"]) == {key for key, _label, _base in consumer_throughput.ROWS}
    for key, value in consumer["median"].items():
        assert _positive(value), (key, consumer["median"])
        assert _positive(consumer["ratios"][key]), (key, consumer["ratios"])
    # Each kafkaguard mode against the raw loop writing the same rows (the floor of its guarantees).
    assert set(consumer["vs_floor"]) == {"kg_tx", "kg_tx_conn", "kg_batch"}
    assert all(_positive(v) for v in consumer["vs_floor"].values()), consumer["vs_floor"]

    latency = results["latency"].data["rates"]
    assert [r["offered"] for r in latency if r["consumer"] == "default"] == list(bench_run.QUICK.latency_rates)
    for rate in latency:
        assert rate["achieved"] > 0.8 * rate["offered"], rate
        assert 0 < rate["applied_p50"] <= rate["applied_p99"] < 60_000, rate
        assert rate["kafka_p50"] <= rate["applied_p50"], rate

    rss = results["rss"].data
    assert [s["backlog"] for s in rss["stages"]] == list(bench_run.QUICK.rss_backlogs)
    assert _positive(rss["consumer_growth"])
    for stage in rss["stages"]:
        assert 20 < stage["relay_peak_mb"] < 2000, stage
        assert 20 < stage["consumer_peak_mb"] < 2000, stage

    write = results["write_path"].data["median_rps"]
    assert _positive(write["with_outbox"]) and _positive(write["without_outbox"]), write

    databases = results["databases"].data  # issue 18: the same relay and consumer work on both databases
    assert set(databases["median"]) == {f"{p}_{d}" for p in ("relay", "consumer") for d in ("postgresql", "mariadb")}
    for key, value in databases["median"].items():
        assert _positive(value), (key, databases["median"])
    assert databases["mariadb"].startswith("10.11"), databases["mariadb"]
