"""Text views of a :class:`~router.reports.aggregate.Report`: a rich table, CSV and JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from rich import box
from rich.console import Console
from rich.table import Table

from router.reports.aggregate import Report

CSV_METRICS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "spend_usd",
    "counterfactual_usd",
    "savings_usd",
    "routing_savings_usd",
    "cache_savings_usd",
    "savings_pct",
    "cache_hits",
    "cache_hit_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "unmetered_usd",
    "reclaimed_usd",
)
"""Metric columns of the CSV, after the grouping columns; then one ``tier_<name>_share`` each."""
TOTAL_LABEL = "(total)"


def fmt_time(ts: float | None) -> str:
    """Unix seconds -> ``2026-11-23 10:00 UTC``; ``-`` for None."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def usd(v: float | None) -> str:
    """US dollars for people: 4 decimals below $100, else 2."""
    if v is None:
        return "-"
    if abs(v) < 0.00005:
        v = 0.0  # no "$-0.0000" from float noise
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def pct(v: float | None, scale: float = 100.0) -> str:
    """A share (``scale=100`` for a rate in [0, 1]) or a percentage (``scale=1``) as ``12.3%``."""
    return "-" if v is None else f"{v * scale:.1f}%"


def ms(v: float | None) -> str:
    """Milliseconds for people."""
    return "-" if v is None else f"{v:,.1f} ms"


def tiers_text(m: dict[str, Any]) -> str:
    """``local 60% · hosted 40%``."""
    return " · ".join(f"{t} {s * 100:.0f}%" for t, s in m["tier_share"].items()) or "-"


def render_json(report: Report) -> str:
    """The report as indented JSON (the same document as ``GET /admin/reports/summary``)."""
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


def _tier_names(report: Report) -> list[str]:
    return sorted(report.totals["tier_share"])


def render_csv(report: Report) -> str:
    """One row per group, then a total row (grouping columns ``(total)``); money in USD."""
    tiers = _tier_names(report)
    keys = list(report.by) or ["group"]
    header = [*keys, *CSV_METRICS, *(f"tier_{t}_share" for t in tiers)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)

    def row(key: list[str], m: dict[str, Any]) -> list[Any]:
        vals = ["" if m[c] is None else m[c] for c in CSV_METRICS]
        return [*key, *vals, *(m["tier_share"].get(t, 0.0) for t in tiers)]

    for g in report.groups:
        w.writerow(row([g["key"][k] for k in report.by], g))
    w.writerow(row([TOTAL_LABEL] * len(keys), report.totals))
    return buf.getvalue()


def metrics_table(report: Report) -> Table:
    title = f"Usage {fmt_time(report.since_s)} → {fmt_time(report.until_s)}"
    t = Table(title=title, box=box.SIMPLE_HEAVY, show_footer=bool(report.groups))
    cols = [c.title() for c in report.by] or ["Scope"]
    for i, c in enumerate(cols):
        t.add_column(c, footer=TOTAL_LABEL if i == 0 else "", no_wrap=True)
    m = report.totals
    spec: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("Requests", lambda x: f"{x['requests']:,}"),
        ("Tokens", lambda x: f"{x['total_tokens']:,}"),
        ("Spend", lambda x: usd(x["spend_usd"])),
        ("All-hosted", lambda x: usd(x["counterfactual_usd"])),
        ("Saved (routing)", lambda x: usd(x["routing_savings_usd"])),
        ("Saved (cache)", lambda x: usd(x["cache_savings_usd"])),
        ("Saved %", lambda x: pct(x["savings_pct"], 1.0)),
        ("Tiers", tiers_text),
        ("Cache hits", lambda x: pct(x["cache_hit_rate"])),
        ("p50", lambda x: ms(x["latency_p50_ms"])),
        ("p95", lambda x: ms(x["latency_p95_ms"])),
    ]
    for name, fn in spec:
        t.add_column(name, justify="left" if name == "Tiers" else "right", footer=fn(m))
    if report.groups:
        for g in report.groups:
            t.add_row(*(g["key"][k] for k in report.by), *(fn(g) for _, fn in spec))
    else:
        t.add_row(TOTAL_LABEL, *(fn(m) for _, fn in spec))
    return t


def budget_table(report: Report) -> Table:
    t = Table(title="Team budgets (current window)", box=box.SIMPLE_HEAVY)
    for name in ("Team", "Window", "Limit", "Spent", "Reserved", "Remaining", "Used"):
        t.add_column(name, justify="left" if name in ("Team", "Window") else "right")
    for b in report.budgets:
        t.add_row(
            b["team"],
            b["window"],
            usd(b["limit_usd"]),
            usd(b["spent_usd"]),
            usd(b["reserved_usd"]),
            usd(b["remaining_usd"]),
            pct(b["used_pct"], 1.0),
        )
    return t


def render_table(report: Report, width: int = 160, color: bool = False) -> str:
    """The terminal view: usage by group with a total footer, then team budgets."""
    console = Console(
        file=io.StringIO(), width=width, force_terminal=color, no_color=not color, record=False
    )
    console.print(metrics_table(report))
    if report.budgets:
        console.print(budget_table(report))
    m = report.totals
    if m.get("unmetered_usd"):
        console.print(
            f"Served unmetered (Redis unreachable, fail_open): {usd(m['unmetered_usd'])} of the "
            "spend; charged to the budgets once Redis was back."
        )
    if m.get("reclaimed_usd"):
        console.print(
            f"Reclaimed holds of dead replicas: {usd(m['reclaimed_usd'])} in "
            f"{m['reclaimed_requests']} rows, charged at the reserved amount (correct them with "
            "router ledger reconcile)."
        )
    if report.quality and report.quality.get("labels"):
        from router.reports.render_quality import quality_table

        console.print(quality_table(report.quality))
    if report.totals.get("truncated"):
        console.print("[yellow]note: the range held more records than one report reads[/]")
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()
