"""Server-rendered SVG charts (pure): no script, no library, works offline and in any browser."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from kafkaguard.console.queries import Bucket

WIDTH, HEIGHT, PAD = 720, 180, 24
ARRIVED, RESTORED = "#c0392b", "#27ae60"


def arrivals_chart(buckets: Sequence[Bucket]) -> str:
    """Paired bars per hour: dead letters that arrived (red) and were restored (green), with a legend."""
    if not buckets:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="0" height="0"></svg>'
    peak = max(1, *(max(b.arrived, b.restored) for b in buckets))
    slot = (WIDTH - 2 * PAD) / len(buckets)
    bar = max(1.0, slot / 2 - 1)
    plot = HEIGHT - 2 * PAD
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="dead letters per hour" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" class="chart">',
        f'<text x="{PAD}" y="14" font-size="11">peak {peak}/h</text>',
        f'<rect x="{WIDTH - 230}" y="4" width="10" height="10" fill="{ARRIVED}"/>'
        f'<text x="{WIDTH - 216}" y="13" font-size="11">arrived</text>',
        f'<rect x="{WIDTH - 150}" y="4" width="10" height="10" fill="{RESTORED}"/>'
        f'<text x="{WIDTH - 136}" y="13" font-size="11">restored</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>',
    ]
    for i, b in enumerate(buckets):
        x = PAD + i * slot
        label = escape(b.start.strftime("%H:00"))
        for offset, value, colour, what in (
            (0.0, b.arrived, ARRIVED, "arrived"),
            (bar, b.restored, RESTORED, "restored"),
        ):
            h = plot * value / peak
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{label} {what}: {value}</title></rect>'
            )
        if i % 4 == 0:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" font-size="10">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
