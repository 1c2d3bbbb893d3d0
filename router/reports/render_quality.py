"""Views of the routing-quality section (:mod:`router.learning.quality`): text and HTML."""

from __future__ import annotations

from html import escape
from typing import Any

from rich import box
from rich.table import Table

from router.reports import charts


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _interval(d: Any) -> str:
    if not d:
        return "-"
    return f"{d['delta']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]"


def quality_lines(q: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``(label, value)`` pairs shared by the table and the HTML cards."""
    if not q:
        return []
    today = q.get("shadow_today") or {}
    return [
        (
            "labels collected",
            f"{q['labels']:,} ({q['shadow']:,} shadow, {q['feedback']:,} "
            f"feedback; {q['strong_better']:,} strong better)",
        ),
        ("with a stored prompt", f"{q['with_prompt']:,}"),
        ("serving head", f"{q.get('serving_version')} ({q.get('head') or '-'})"),
        ("head APGR on its labels", f"{_num(q.get('head_apgr'))} on {q['head_labels']:,}"),
        ("prompt length APGR", _num(q.get("length_apgr"))),
        ("head - length (95 %)", _interval(q.get("head_minus_length"))),
        ("shadow spend today", f"${q.get('shadow_spend_today_usd', 0):,.4f}"),
        ("shadow jobs today", ", ".join(f"{k} {v}" for k, v in today.items()) or "-"),
    ]


def quality_table(q: dict[str, Any]) -> Table:
    """The routing-quality table of ``router report``."""
    t = Table(title="Routing quality (the deployment's own labels)", box=box.SIMPLE_HEAVY)
    t.add_column("", justify="left")
    t.add_column("", justify="left")
    for name, value in quality_lines(q):
        t.add_row(name, value)
    curve = q.get("curve")
    if curve:
        shares = " ".join(f"{s:>5.0%}" for s in curve["strong_share"])
        t.add_row("strong share", shares)
        t.add_row("quality (head)", " ".join(f"{v:>5.2f}" for v in curve["head"]))
        t.add_row("quality (length)", " ".join(f"{v:>5.2f}" for v in curve["length"]))
    return t


def quality_html(q: dict[str, Any] | None) -> str:
    """The dashboard's and the HTML report's routing-quality section ('' without labels)."""
    if not q or not q.get("labels"):
        return ""
    cards = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="l">{escape(k)}</div></div>'
        for k, v in quality_lines(q)
    )
    curve = q.get("curve")
    chart = ""
    if curve:
        labels = [f"{s:.0%}" for s in curve["strong_share"]]
        chart = charts.line_chart(
            "routing-quality",
            "Quality of routed answers against the strong share (labels)",
            labels,
            [
                ("serving head", curve["head"], "#2563eb"),
                ("prompt length", curve["length"], "#ea580c"),
            ],
            lambda v: f"{v:.2f}",
            y_max=1.0,
        )
    return (
        '<h2>Routing quality</h2><section class="cards" id="routing-quality">'
        f'{cards}</section><section class="charts">{chart}</section>'
    )
