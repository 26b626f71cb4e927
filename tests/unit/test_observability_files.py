"""The shipped Grafana dashboard and Prometheus rules: their shape, and runbooks that resolve.

Whether the metric names they use are served by real workers: tests/integration/test_observability_assets.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.observability import (
    REPO,
    dashboard_exprs,
    heading_anchors,
    load_dashboard,
    load_rules,
    metric_names,
    panels,
    rule_exprs,
    rules_problems,
)


def test_dashboard_has_a_prometheus_datasource_variable_used_by_every_panel_and_target() -> None:
    dash = load_dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dash["uid"] and dash["title"]
    shown = panels(dash)
    assert len(shown) >= 15
    for panel in shown:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no targets"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert metric_names([target["expr"]]), f"{panel['title']}: {target['expr']} selects no kafkaguard metric"


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    dash = load_dashboard()
    every = [p for p in dash["panels"]]
    ids = [p["id"] for p in every]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for p in every:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    names = metric_names(dashboard_exprs(load_dashboard()))
    for wanted in (
        "kafkaguard_outbox_backlog",
        "kafkaguard_outbox_oldest_age_seconds",
        "kafkaguard_relay_published_total",
        "kafkaguard_relay_publish_seconds_bucket",
        "kafkaguard_consumer_lag",
        "kafkaguard_consumer_applied_total",
        "kafkaguard_dead_letters",
        "kafkaguard_parked_keys",
        "kafkaguard_restore_outcomes_total",
    ):
        assert wanted in names
    assert any("histogram_quantile" in e and "_bucket" in e for e in dashboard_exprs(load_dashboard()))


def test_rules_file_passes_the_schema_check_and_covers_the_issue() -> None:
    rules = load_rules()
    assert rules_problems(rules) == []
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "KafkaguardOutboxBacklogOld",
        "KafkaguardRelayStalled",
        "KafkaguardConsumerLagGrowing",
        "KafkaguardDeadLettersPendingTooLong",
        "KafkaguardStoreOutage",
    } <= alerts
    assert metric_names(rule_exprs(rules))


def _first_rule(doc: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = doc["groups"][0]["rules"][0]
    return rule


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: _first_rule(d).pop("expr"), "needs an expr"),
        (lambda d: _first_rule(d).__setitem__("for", "5 minutes"), "is not a duration"),
        (lambda d: _first_rule(d)["annotations"].pop("runbook"), "needs annotations.runbook"),
        (lambda d: _first_rule(d).__setitem__("record", "x"), "exactly one of alert and record"),
        (lambda d: _first_rule(d).__setitem__("severity", "page"), "unknown keys"),
        (lambda d: _first_rule(d)["labels"].__setitem__("severity", 3), "string value"),
        (lambda d: _first_rule(d).__setitem__("expr", "max(kafkaguard_x"), "unbalanced"),
        (lambda d: d["groups"].append(copy.deepcopy(d["groups"][0])), "name used twice"),
    ],
)
def test_the_schema_check_catches_a_broken_rule(break_it: Any, expected: str) -> None:
    doc = load_rules()
    break_it(doc)
    assert any(expected in p for p in rules_problems(doc)), rules_problems(doc)


def test_every_runbook_links_to_a_section_of_an_operations_page() -> None:
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            page, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert page.startswith("docs/operations/") and page.endswith(".md"), rule["alert"]
            path = REPO / page
            assert path.is_file(), f"{rule['alert']}: {page} does not exist"
            assert anchor in heading_anchors(path.read_text()), f"{rule['alert']}: no section #{anchor} in {page}"
