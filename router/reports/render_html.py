"""The HTML view: one self-contained file (inline CSS and SVG, no script, no network).

:func:`report_body` is shared with the dashboard (:mod:`router.api.dashboard`), which swaps it
in place every few seconds, so the file and the page show the same numbers and charts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from router.reports import charts
from router.reports.aggregate import Report
from router.reports.render_quality import quality_html
from router.reports.render_text import fmt_time, ms, pct, tiers_text, usd

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;
background:#f9fafb}
header{padding:16px 24px;background:#111827;color:#f9fafb}
header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#d1d5db;font-size:13px}
main{padding:16px 24px;max-width:1200px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.card .v{font-size:20px;font-weight:600}
.card .l{color:#6b7280;font-size:12px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px;
margin-top:14px}
figure.chart{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:6px}
figure.chart svg{width:100%;height:auto;display:block}
h2{font-size:16px;margin:20px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e5e7eb;padding:5px 8px;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-weight:600}
td.k,th.k{text-align:left}
tr.total td{font-weight:600;background:#f9fafb}
.bar{display:inline-block;width:90px;height:8px;background:#e5e7eb;border-radius:4px;
vertical-align:middle;margin-right:6px;overflow:hidden}
.bar i{display:block;height:100%;background:#16a34a}
.bar i.warn{background:#ea580c}.bar i.over{background:#dc2626}
.muted{color:#6b7280}
"""
"""The page's stylesheet (inline)."""


def _labels(series: dict[str, Any]) -> list[str]:
    """Bucket start times as short labels (UTC): dates for day buckets, else times."""
    buckets: list[float] = series["buckets"]
    width = series["bucket_s"]
    if not buckets:
        return []
    multi_day = buckets[-1] - buckets[0] >= 86400
    if width >= 86400:
        form = "%m-%d"
    elif multi_day:
        form = "%m-%d %H:%M"
    else:
        form = "%H:%M"
    return [datetime.fromtimestamp(b, UTC).strftime(form) for b in buckets]


def chart_svgs(report: Report) -> list[str]:
    """The five charts: spend by team, savings, tier share, cache hit rate, latency."""
    s = report.series
    labels = _labels(s)
    t = report.totals
    teams = [(team, vals, charts.colour(i)) for i, (team, vals) in enumerate(s["teams"].items())]
    saved = f"actual spend (saved {usd(t['savings_usd'])}"
    saved += f", {t['savings_pct']:.1f}%)" if t["savings_pct"] is not None else ")"
    hit = [None if v is None else v * 100 for v in s["cache_hit_rate"]]
    order = sorted(t["tier_share"], key=lambda k: -t["tier_share"][k])
    spend = t["spend_usd"]
    tiers = [
        (f"{tier} requests", t["tier_share"][tier], f"{t['tier_requests'][tier]:,} req",
         charts.colour(i))
        for i, tier in enumerate(order)
    ] + [
        (f"{tier} spend", t["tier_spend_usd"][tier] / spend if spend > 0 else 0.0,
         usd(t["tier_spend_usd"][tier]), charts.colour(i))
        for i, tier in enumerate(order)
    ]  # fmt: skip
    return [
        charts.stacked_bars("spend-by-team", "Spend over time by team (USD)", labels, teams, usd),
        charts.line_chart(
            "savings",
            "Cumulative spend vs the all-hosted baseline (USD)",
            labels,
            [
                ("all-hosted baseline", s["cum_counterfactual"], "#dc2626"),
                (saved, s["cum_spend"], "#16a34a"),
            ],
            usd,
        ),
        charts.share_bars("tier-share", "Share of requests and of spend per tier", tiers),
        charts.line_chart(
            "cache-hit-rate",
            f"Cache hit rate (overall {pct(t['cache_hit_rate'])})",
            labels,
            [("hit rate", hit, "#0891b2")],
            lambda v: f"{v:.0f}%",
            y_max=100.0,
        ),
        charts.line_chart(
            "latency",
            "Latency (ms)",
            labels,
            [
                ("p50", s["latency_p50_ms"], "#2563eb"),
                ("p95", s["latency_p95_ms"], "#9333ea"),
            ],
            lambda v: f"{v:,.0f}",
        ),
    ]


def _cards(t: dict[str, Any]) -> str:
    items = [
        (f"{t['requests']:,}", f"requests ({t['errors']:,} errors)"),
        (f"{t['total_tokens']:,}", "tokens (prompt + completion)"),
        (usd(t["spend_usd"]), "spend"),
        (usd(t["counterfactual_usd"]), "all-hosted baseline"),
        (usd(t["routing_savings_usd"]), "saved by routing"),
        (usd(t["cache_savings_usd"]), "saved by the cache"),
        (pct(t["cache_hit_rate"]), "cache hit rate"),
        (f"{ms(t['latency_p50_ms'])} / {ms(t['latency_p95_ms'])}", "latency p50 / p95"),
    ]
    body = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="l">{escape(lab)}</div>'
        "</div>"
        for v, lab in items
    )
    return f'<section class="cards" id="totals">{body}</section>'


def _groups_table(report: Report) -> str:
    if not report.by:
        return ""
    heads = [*(c.title() for c in report.by), "Requests", "Tokens", "Spend", "All-hosted",
             "Saved (routing)", "Saved (cache)", "Tiers", "Cache hits", "p50", "p95"]  # fmt: skip

    def cells(m: dict[str, Any]) -> list[str]:
        return [
            f"{m['requests']:,}",
            f"{m['total_tokens']:,}",
            usd(m["spend_usd"]),
            usd(m["counterfactual_usd"]),
            usd(m["routing_savings_usd"]),
            usd(m["cache_savings_usd"]),
            tiers_text(m),
            pct(m["cache_hit_rate"]),
            ms(m["latency_p50_ms"]),
            ms(m["latency_p95_ms"]),
        ]

    nk = len(report.by)
    th = "".join(
        f'<th class="{"k" if i < nk else ""}">{escape(h)}</th>' for i, h in enumerate(heads)
    )
    rows = []
    for g in report.groups:
        keys = "".join(f'<td class="k">{escape(g["key"][k])}</td>' for k in report.by)
        rows.append(f"<tr>{keys}{''.join(f'<td>{escape(c)}</td>' for c in cells(g))}</tr>")
    total = "".join(f'<td class="k">{"Total" if i == 0 else ""}</td>' for i in range(nk))
    rows.append(
        f'<tr class="total">{total}'
        f"{''.join(f'<td>{escape(c)}</td>' for c in cells(report.totals))}</tr>"
    )
    by = ", ".join(report.by)
    return f'<h2>By {escape(by)}</h2><table id="groups"><tr>{th}</tr>{"".join(rows)}</table>'


def _budgets_table(report: Report) -> str:
    if not report.budgets:
        return ""
    rows = []
    for b in report.budgets:
        used = b["used_pct"] or 0.0
        cls = "over" if used >= 100 else "warn" if used >= 80 else ""
        bar = f'<span class="bar"><i class="{cls}" style="width:{min(used, 100):.1f}%"></i></span>'
        rows.append(
            f'<tr><td class="k">{escape(b["team"])}</td><td class="k">{escape(b["window"])}</td>'
            f"<td>{usd(b['limit_usd'])}</td><td>{usd(b['spent_usd'])}</td>"
            f"<td>{usd(b['reserved_usd'])}</td><td>{usd(b['remaining_usd'])}</td>"
            f"<td>{bar}{pct(b['used_pct'], 1.0)}</td></tr>"
        )
    head = (
        '<tr><th class="k">Team</th><th class="k">Window</th><th>Limit</th><th>Spent</th>'
        "<th>Reserved</th><th>Remaining</th><th>Used</th></tr>"
    )
    return (
        f'<h2>Team budgets (current window)</h2><table id="budgets">{head}{"".join(rows)}</table>'
    )


def report_body(report: Report) -> str:
    """The report's content (cards, charts, tables) as an HTML fragment."""
    charts_html = "".join(chart_svgs(report))
    note = ""
    if report.totals.get("truncated"):
        note = '<p class="muted">The range held more records than one report reads.</p>'
    return (
        f'{_cards(report.totals)}{note}<section class="charts">{charts_html}</section>'
        f"{_groups_table(report)}{_budgets_table(report)}{quality_html(report.quality)}"
    )


def subtitle(report: Report) -> str:
    """``2026-11-23 00:00 UTC → 2026-11-24 00:00 UTC · generated ...``."""
    since = fmt_time(report.since_s) if report.since_s is not None else "start of the ledger"
    until = fmt_time(report.until_s) if report.until_s is not None else "now"
    return f"{since} → {until} · generated {fmt_time(report.generated_s)}"


def render_html(report: Report) -> str:
    """The whole report as one HTML document that opens offline."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>hybrid-router cost report</title>'
        f"<style>{STYLE}</style></head><body>"
        "<header><h1>hybrid-router cost report</h1>"
        f"<p>{escape(subtitle(report))}</p></header>"
        f"<main>{report_body(report)}</main></body></html>\n"
    )
