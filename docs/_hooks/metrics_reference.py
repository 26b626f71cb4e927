"""Markdown table of the metrics kafkaguard's workers count, generated from :class:`kafkaguard.metrics.Metrics`."""

from __future__ import annotations

from prometheus_client.metrics import MetricWrapperBase

from kafkaguard.metrics.registry import Metrics

SUFFIX = {"counter": "_total"}


def render() -> str:
    lines = ["| metric | type | labels | what |", "| --- | --- | --- | --- |"]
    for metric in vars(Metrics()).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        # prometheus_client keeps these as attributes without a public accessor; they are stable.
        kind = metric._type
        name = metric._name + SUFFIX.get(kind, "")
        labels = ", ".join(f"`{label}`" for label in metric._labelnames)
        lines.append(f"| `{name}` | {kind} | {labels} | {metric._documentation} |")
    return "\n".join(lines) + "\n"
