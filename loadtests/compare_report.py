"""Summary, table, plot and Markdown of ``compare_gateways.py`` results.

Throughput in requests/s, latency in milliseconds, memory in MiB, CPU in ms per request.
"""

from __future__ import annotations

import importlib
import math
import os
import statistics
from pathlib import Path
from typing import Any

from load_phases import PhaseResult

GATEWAYS = ("hybrid-router", "litellm-proxy")
GOAL_THROUGHPUT_RATIO = 3.0
GOAL_ADDED_P50_RATIO = 1 / 3


def _by(results: list[PhaseResult], target: str, mode: str) -> list[PhaseResult]:
    return [r for r in results if r.target == target and r.mode == mode]


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return round(a / b, 2)


def summarize(results: list[PhaseResult]) -> dict[str, Any]:
    """Closed-loop throughput, added latency per common rate, memory, and the issue's goal."""
    out: dict[str, Any] = {"throughput_rps": {}, "added_ms": {}, "peak_rss_mb": {}}
    rounds: dict[str, list[float]] = {}
    for r in results:
        if r.mode == "closed":
            rounds.setdefault(r.target, []).append(r.rps)
        for role, mb in r.peak_rss_mb.items():
            key = f"{r.target}/{role}"
            out["peak_rss_mb"][key] = max(out["peak_rss_mb"].get(key, 0.0), mb)
    for target, values in rounds.items():
        out["throughput_rps"][target] = round(statistics.median(values), 1)
    out["throughput_rounds_rps"] = rounds
    for direct in _by(results, "direct", "open"):
        rate = direct.offered_rps
        row: dict[str, Any] = {}
        for gw in GATEWAYS:
            match = [r for r in _by(results, gw, "open") if r.offered_rps == rate]
            if match:
                row[gw] = {
                    "p50": round(match[0].p50_ms - direct.p50_ms, 3),
                    "p99": round(match[0].p99_ms - direct.p99_ms, 3),
                }
        out["added_ms"][f"{rate:g}"] = row
    hy, ll = GATEWAYS
    tput = _ratio(out["throughput_rps"].get(hy), out["throughput_rps"].get(ll))
    both = {k: v for k, v in out["added_ms"].items() if hy in v and ll in v}
    p50_ratios = {k: _ratio(v[hy]["p50"], v[ll]["p50"]) for k, v in both.items()}
    out["goal"] = {
        "throughput_ratio": tput,
        "throughput_ok": tput is not None and tput >= GOAL_THROUGHPUT_RATIO,
        "added_p50_ratio_by_rate": p50_ratios,
        "added_p50_ok": (
            all(x is not None and x <= GOAL_ADDED_P50_RATIO for x in p50_ratios.values())
            if p50_ratios
            else None
        ),
    }
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}"


def _verdict(ok: bool | None) -> str:
    return (
        "not measured: no rate that both gateways sustain"
        if ok is None
        else ("met" if ok else "NOT met")
    )


def table(results: list[PhaseResult]) -> str:
    """A plain-text table of every phase."""
    head = (
        f"{'target':14} {'phase':12} {'req':>7} {'err':>5} {'rps':>8} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'RSS MiB':>8} {'CPU ms/req':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        phase = f"closed #{r.round}" if r.mode == "closed" else f"open {r.offered_rps:g}/s"
        rss = r.peak_rss_mb.get("gateway", r.peak_rss_mb.get("upstream", float("nan")))
        cpu = r.cpu_ms_per_req.get("gateway", r.cpu_ms_per_req.get("upstream", float("nan")))
        lines.append(
            f"{r.target:14} {phase:12} {r.requests:7d} {r.errors:5d} {r.rps:8.1f} "
            f"{r.p50_ms:8.2f} {r.p99_ms:8.2f} {rss:8.1f} {cpu:10.2f}"
        )
    return "\n".join(lines)


def plot(results: list[PhaseResult], path: Path) -> bool:
    """Throughput bars and added-latency curves as a PNG; False when matplotlib is missing."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    matplotlib.use("Agg")
    plt = importlib.import_module("matplotlib.pyplot")
    summary = summarize(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(summary["throughput_rps"])
    values = [summary["throughput_rps"][n] for n in names]
    colors = {"direct": "#999999", "hybrid-router": "#1f77b4", "litellm-proxy": "#d62728"}
    bars = ax1.bar(names, values, color=[colors.get(n, "#555555") for n in names])
    ax1.bar_label(bars, labels=[f"{v:,.0f}" for v in values])
    ax1.set_yscale("log")
    ax1.set_ylabel("requests/s (log)")
    ax1.set_title("Closed-loop throughput")
    for gw in GATEWAYS:
        pts = sorted(
            (float(rate), row[gw]["p50"], row[gw]["p99"])
            for rate, row in summary["added_ms"].items()
            if gw in row
        )
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax2.plot(xs, [max(p[1], 0.01) for p in pts], "o-", color=colors[gw], label=f"{gw} p50")
        ax2.plot(xs, [max(p[2], 0.01) for p in pts], "s--", color=colors[gw], label=f"{gw} p99")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("offered load, requests/s (open loop)")
    ax2.set_ylabel("added latency vs direct, ms (log)")
    ax2.set_title("Added latency")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _concurrency(results: list[PhaseResult]) -> str:
    return ", ".join(sorted({str(r.concurrency) for r in results if r.mode == "closed"}))


def markdown_section(payload: dict[str, Any], plot_path: Path, doc_path: Path) -> str:
    """The generated part of ``docs/performance-gateways.md``."""
    env, summary = payload["environment"], payload["summary"]
    results = [PhaseResult(**r) for r in payload["results"]]
    hy, ll = GATEWAYS
    goal = summary["goal"]
    lines = [
        f"Measured {env['date_utc']} UTC at commit `{env['commit']}` on {env['cpus']} CPUs "
        f"(Python {env['python']}); load average before {env['loadavg_before']}, after "
        f"{env['loadavg_after']}.",
        "",
        "```",
        env["command"],
        "```",
        "",
        f"| target | closed-loop rps (median; each round), {_concurrency(results)} clients | "
        "peak RSS MiB | CPU ms/req |",
        "|---|---:|---:|---:|",
    ]
    closed = [x for x in results if x.mode == "closed"]
    for name, values in summary["throughput_rounds_rps"].items():
        mine = [x for x in closed if x.target == name]
        role = "upstream" if name == "direct" else "gateway"
        rss = max(x.peak_rss_mb.get(role, 0.0) for x in mine)
        cpu = statistics.median(x.cpu_ms_per_req.get(role, 0.0) for x in mine)
        extra = ""
        if any("redis" in x.peak_rss_mb for x in mine):
            redis_rss = max(x.peak_rss_mb.get("redis", 0.0) for x in mine)
            redis_cpu = statistics.median(x.cpu_ms_per_req.get("redis", 0.0) for x in mine)
            extra = f" (+ Redis {redis_rss:.0f} MiB, {redis_cpu:.2f} ms/req)"
        each = ", ".join(f"{v:,.0f}" for v in values)
        lines.append(
            f"| {name} | **{summary['throughput_rps'][name]:,.0f}** ({each}) | {rss:.0f}{extra} | "
            f"{cpu:.2f} |"
        )
    lines += [
        "",
        "| offered rps | direct p50 / p99 ms | hybrid-router added p50 / p99 ms | "
        "litellm-proxy added p50 / p99 ms | errors (direct / hybrid / litellm) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for direct in (x for x in results if x.target == "direct" and x.mode == "open"):
        rate = f"{direct.offered_rps:g}"
        row = summary["added_ms"].get(rate, {})
        errs = []
        for name in ("direct", hy, ll):
            match = [
                x
                for x in results
                if x.target == name and x.mode == "open" and x.offered_rps == direct.offered_rps
            ]
            errs.append(str(match[0].errors) if match else "skipped")
        cells = [
            f"{_fmt(row[gw]['p50'])} / {_fmt(row[gw]['p99'])}"
            if gw in row
            else "skipped (above its capacity)"
            for gw in GATEWAYS
        ]
        lines.append(
            f"| {rate} | {direct.p50_ms:.2f} / {direct.p99_ms:.2f} | {cells[0]} | {cells[1]} | "
            f"{' / '.join(errs)} |"
        )
    ratios = ", ".join(
        f"{rate}/s: {_fmt(v)}" for rate, v in goal["added_p50_ratio_by_rate"].items()
    )
    lines += [
        "",
        f"Goal (issue 9): throughput ≥ {GOAL_THROUGHPUT_RATIO:g}× LiteLLM's — measured "
        f"{_fmt(goal['throughput_ratio'])}× ({_verdict(goal['throughput_ok'])}); "
        f"added p50 ≤ 1/3 of LiteLLM's — hybrid/LiteLLM ratio {ratios or '-'} "
        f"({_verdict(goal['added_p50_ok'])}).",
        "",
    ]
    for name, notes in payload["targets"].items():
        if notes:
            lines.append(f"- **{name}**: " + "; ".join(notes))
    rel = os.path.relpath(plot_path, doc_path.parent)
    lines += ["", f"![throughput and added latency]({rel})", ""]
    return "\n".join(lines)
