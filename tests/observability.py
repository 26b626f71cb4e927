"""The shipped dashboard and alerting rules, read for the tests: their PromQL, the metric names in it,
and a structural check of the rules file (what ``promtool check rules`` checks, short of parsing PromQL).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "kafkaguard-dashboard.json"
RULES = REPO / "deploy" / "prometheus" / "kafkaguard-alerts.yml"

METRIC_NAME = re.compile(r"\bkafkaguard_[a-z_]+")
# Prometheus durations: one or more <number><unit>, largest unit first (e.g. 1h30m).
DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")
ALERT_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def load_rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows too (rows themselves left out)."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [str(t["expr"]) for p in panels(dashboard) for t in p.get("targets", []) if "expr" in t]


def rule_exprs(rules: dict[str, Any]) -> list[str]:
    return [str(r["expr"]) for g in rules.get("groups", []) for r in g.get("rules", []) if "expr" in r]


def metric_names(exprs: list[str]) -> set[str]:
    """The kafkaguard series names the expressions select (as PromQL spells them: ``..._total``,
    ``..._bucket``)."""
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def sample_names(family: str, kind: str) -> set[str]:
    """The series names a metric family of type ``kind`` exposes (the PromQL names of its samples)."""
    if kind == "counter":
        return {family + "_total"}
    if kind == "histogram":
        return {family + s for s in ("_bucket", "_sum", "_count")}
    if kind == "summary":
        return {family, family + "_sum", family + "_count"}
    return {family}


def rules_problems(doc: Any) -> list[str]:
    """What is wrong with a Prometheus rules document, structurally: groups with unique names, rules
    with exactly one of alert/record, an expr, known keys only, durations that parse, label and
    annotation values that are strings, and (kafkaguard's own demand) a runbook for each alert."""
    problems: list[str] = []
    if not isinstance(doc, dict) or set(doc) != {"groups"} or not isinstance(doc["groups"], list):
        return ["the document must be a mapping with one key, groups: a list"]
    seen_groups: set[str] = set()
    for gi, group in enumerate(doc["groups"]):
        where = f"group {gi}"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str) or not group["name"]:
            problems.append(f"{where}: needs a name")
            continue
        where = f"group {group['name']!r}"
        if group["name"] in seen_groups:
            problems.append(f"{where}: name used twice")
        seen_groups.add(group["name"])
        extra = set(group) - {"name", "interval", "limit", "rules", "query_offset", "labels"}
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}")
        if "interval" in group and not _is_duration(group["interval"]):
            problems.append(f"{where}: interval {group['interval']!r} is not a duration")
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problems.append(f"{where}: needs a non-empty list of rules")
            continue
        for ri, rule in enumerate(rules):
            problems.extend(_rule_problems(f"{where} rule {ri}", rule))
    return problems


def _rule_problems(where: str, rule: Any) -> list[str]:
    if not isinstance(rule, dict):
        return [f"{where}: not a mapping"]
    problems: list[str] = []
    if "alert" in rule:
        where = f"{where} ({rule['alert']})"
    extra = set(rule) - RULE_KEYS
    if extra:
        problems.append(f"{where}: unknown keys {sorted(extra)}")
    if ("alert" in rule) == ("record" in rule):
        problems.append(f"{where}: needs exactly one of alert and record")
    if "alert" in rule and not (isinstance(rule["alert"], str) and ALERT_NAME.match(rule["alert"])):
        problems.append(f"{where}: bad alert name {rule.get('alert')!r}")
    expr = rule.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        problems.append(f"{where}: needs an expr")
    elif expr.count("(") != expr.count(")") or expr.count("[") != expr.count("]"):
        problems.append(f"{where}: unbalanced brackets in expr")
    for key in ("for", "keep_firing_for"):
        if key in rule and not _is_duration(rule[key]):
            problems.append(f"{where}: {key} {rule[key]!r} is not a duration")
    for key in ("labels", "annotations"):
        values = rule.get(key, {})
        if not isinstance(values, dict):
            problems.append(f"{where}: {key} must be a mapping")
            continue
        for name, value in values.items():
            if not (isinstance(name, str) and LABEL_NAME.match(name)) or not isinstance(value, str):
                problems.append(f"{where}: {key} {name!r} must be a name with a string value")
    if "alert" in rule:
        runbook = rule.get("annotations", {}).get("runbook") if isinstance(rule.get("annotations"), dict) else None
        if not isinstance(runbook, str) or not runbook.strip():
            problems.append(f"{where}: needs annotations.runbook")
    return problems


def _is_duration(value: Any) -> bool:
    return isinstance(value, str) and (value == "0" or (value != "" and DURATION.match(value) is not None))


def heading_anchors(markdown: str) -> set[str]:
    """The anchors MkDocs' toc extension gives the page's headings (lower case, punctuation dropped,
    spaces to hyphens)."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            slug = re.sub(r"[^\w\s-]", "", match.group(1)).strip().lower()
            anchors.add(re.sub(r"[-\s]+", "-", slug))
    return anchors
