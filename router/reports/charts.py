"""Inline SVG charts generated in Python: no script, no CDN, they render offline.

Every chart is a ``<figure class="chart" data-chart="<id>">`` holding one ``<svg>``; every data
mark carries ``class="mark"`` and a ``<title>`` (the browser's hover tooltip). Sizes are in SVG
user units (CSS pixels at 100% zoom). All text from the ledger is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = (
    "#2563eb",
    "#16a34a",
    "#ea580c",
    "#9333ea",
    "#0891b2",
    "#dc2626",
    "#ca8a04",
    "#4b5563",
    "#db2777",
    "#65a30d",
)
"""Series colours, in order."""
WIDTH = 560
HEIGHT = 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 56, 34
"""Plot margins (user units): room for the y labels, the title and legend, the x labels."""

Series = tuple[str, Sequence[float | None], str]
"""(name, one value per x label or None for a gap, colour)."""


def colour(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def nice_max(v: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``v`` (> 0)."""
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp: float = 10.0 ** math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * exp >= v * (1 - 1e-12):
            return m * exp
    return 10 * exp


def _open(chart_id: str, title: str, legend: Sequence[tuple[str, str]] = ()) -> list[str]:
    parts = [
        f'<figure class="chart" data-chart="{escape(chart_id)}">',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="18" font-size="14" font-weight="600" fill="#111827">'
        f"{escape(title)}</text>",
    ]
    x = float(LEFT)
    for name, col in legend:
        parts.append(f'<rect x="{x:.1f}" y="30" width="10" height="10" rx="2" fill="{col}"/>')
        parts.append(f'<text x="{x + 14:.1f}" y="39" fill="#374151">{escape(name)}</text>')
        x += 24 + 6.5 * len(name)
    return parts


def _close(parts: list[str]) -> str:
    parts.append("</svg></figure>")
    return "".join(parts)


def empty_chart(chart_id: str, title: str, message: str = "No data in this range") -> str:
    """A chart frame with ``message`` instead of marks."""
    parts = _open(chart_id, title)
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#6b7280" '
        f'class="empty">{escape(message)}</text>'
    )
    return _close(parts)


def _axes(
    parts: list[str], labels: Sequence[str], top: float, fmt: Callable[[float], str]
) -> tuple[Callable[[int], float], Callable[[float], float], float]:
    """Grid, y ticks and x labels; returns (x of index, y of value, band width)."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    n = max(1, len(labels))
    band = plot_w / n

    def xof(i: int) -> float:
        return LEFT + (i + 0.5) * band

    def yof(v: float) -> float:
        return TOP + plot_h - (v / top) * plot_h

    for k in range(5):
        v = top * k / 4
        y = yof(v)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#9ca3af" if k == 0 else "#e5e7eb"}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">'
            f"{escape(fmt(v))}</text>"
        )
    step = max(1, math.ceil(len(labels) / 8))
    for i, lab in enumerate(labels):
        if i % step == 0:
            parts.append(
                f'<text x="{xof(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'fill="#6b7280">{escape(lab)}</text>'
            )
    return xof, yof, band


def line_chart(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
    y_max: float | None = None,
) -> str:
    """Lines with a dot per value (a single bucket still shows); None values leave gaps."""
    values = [v for _, vals, _ in series for v in vals if v is not None]
    if not labels or not values:
        return empty_chart(chart_id, title)
    top = y_max if y_max is not None else nice_max(max(values))
    parts = _open(chart_id, title, [(name, col) for name, _, col in series])
    xof, yof, _ = _axes(parts, labels, top, fmt)
    for name, vals, col in series:
        path: list[str] = []
        for i, v in enumerate(vals):
            if v is None:
                continue
            path.append(f"{'M' if not path else 'L'}{xof(i):.1f},{yof(v):.1f}")
        if len(path) > 1:
            parts.append(
                f'<path class="line" d="{" ".join(path)}" fill="none" stroke="{col}" '
                f'stroke-width="2" stroke-linejoin="round"/>'
            )
        for i, v in enumerate(vals):
            if v is None:
                continue
            parts.append(
                f'<circle class="mark" cx="{xof(i):.1f}" cy="{yof(v):.1f}" r="3" fill="{col}">'
                f"<title>{escape(name)} {escape(labels[i])}: {escape(fmt(v))}</title></circle>"
            )
    return _close(parts)


def stacked_bars(
    chart_id: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[float], str],
) -> str:
    """Bars per x label, stacked by series (e.g. spend per bucket, stacked by team)."""
    totals = [sum((vals[i] or 0.0) for _, vals, _ in series) for i in range(len(labels))]
    if not labels or not series or max(totals, default=0.0) <= 0:
        return empty_chart(chart_id, title, "No spend in this range")
    top = nice_max(max(totals))
    parts = _open(chart_id, title, [(name, col) for name, _, col in series])
    xof, yof, band = _axes(parts, labels, top, fmt)
    bar_w = max(2.0, min(48.0, band * 0.7))
    for i in range(len(labels)):
        base = 0.0
        for name, vals, col in series:
            v = vals[i] or 0.0
            if v <= 0:
                continue
            y_top, y_bottom = yof(base + v), yof(base)
            parts.append(
                f'<rect class="mark" x="{xof(i) - bar_w / 2:.1f}" y="{y_top:.1f}" '
                f'width="{bar_w:.1f}" height="{max(0.5, y_bottom - y_top):.1f}" fill="{col}">'
                f"<title>{escape(name)} {escape(labels[i])}: {escape(fmt(v))}</title></rect>"
            )
            base += v
    return _close(parts)


def share_bars(chart_id: str, title: str, items: Sequence[tuple[str, float, str, str]]) -> str:
    """Horizontal bars of shares in [0, 1]: (label, share, annotation, colour) per row."""
    if not items:
        return empty_chart(chart_id, title)
    parts = _open(chart_id, title)
    left = 112  # room for labels like "hosted requests"
    plot_w = WIDTH - left - RIGHT - 130
    row_h = min(40.0, (HEIGHT - TOP - 4) / len(items))
    for i, (label, share, note, col) in enumerate(items):
        y = TOP - 14 + i * row_h
        h = row_h * 0.62
        w = max(1.0, plot_w * share)
        parts.append(
            f'<text x="{left - 6}" y="{y + h / 2 + 4:.1f}" text-anchor="end" fill="#374151">'
            f"{escape(label)}</text>"
        )
        parts.append(
            f'<rect x="{left}" y="{y:.1f}" width="{plot_w}" height="{h:.1f}" rx="3" '
            f'fill="#f3f4f6"/>'
        )
        parts.append(
            f'<rect class="mark" x="{left}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="3" '
            f'fill="{col}"><title>{escape(label)}: {share * 100:.1f}% '
            f"({escape(note)})</title></rect>"
        )
        parts.append(
            f'<text x="{left + plot_w + 8}" y="{y + h / 2 + 4:.1f}" fill="#111827">'
            f"{share * 100:.1f}% · {escape(note)}</text>"
        )
    return _close(parts)
