"""Compare a router's scores with the baselines, and draw quality against strong-call share.

Baselines: random routing (expected over random orderings: APGR 0.5), prompt length (longer
prompts to the strong model), always-weak and always-strong (the two ends of the curve).
The plot is a self-contained HTML page with an inline SVG: no plotting library needed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.dataset import Outcomes
from router.classify.metrics import (
    Curve,
    DeltaInterval,
    RouterMetrics,
    apgr_delta_interval,
    pgr_curve,
    router_metrics,
)


@dataclass(frozen=True, slots=True)
class EvalReport:
    """Metrics of the router and the baselines on one data set."""

    rows: int
    router: RouterMetrics
    prompt_length: RouterMetrics
    random: RouterMetrics
    weak_quality: float
    """Mean outcome when everything goes to the weak model."""
    strong_quality: float
    """Mean outcome when everything goes to the strong model."""
    curves: dict[str, Curve] = field(default_factory=dict)
    gain_over_length: DeltaInterval | None = None
    """The router's APGR minus prompt length's, with a paired bootstrap interval."""

    def as_dict(self) -> dict[str, object]:
        """Rounded numbers for JSON output and model metadata."""
        gain = {} if self.gain_over_length is None else {
            "gain_over_length": self.gain_over_length.as_dict()
        }  # fmt: skip
        return {
            "rows": self.rows,
            "router": self.router.as_dict(),
            "prompt_length": self.prompt_length.as_dict(),
            **gain,
            "random": self.random.as_dict(),
            "always_weak_quality": round(self.weak_quality, 4),
            "always_strong_quality": round(self.strong_quality, 4),
        }


def evaluate_scores(
    data: Outcomes, scores: npt.ArrayLike, user_tokens: npt.ArrayLike, resamples: int = 0
) -> EvalReport:
    """Evaluate ``scores`` (higher = more likely to need the strong model) on ``data``;
    ``resamples`` > 0 adds a paired bootstrap interval of the gain over prompt length."""
    s = np.asarray(scores, dtype=np.float64)
    length = np.asarray(user_tokens, dtype=np.float64)
    constant = np.zeros(len(data))
    return EvalReport(
        rows=len(data),
        router=router_metrics(s, data.weak, data.strong),
        prompt_length=router_metrics(length, data.weak, data.strong),
        random=router_metrics(constant, data.weak, data.strong),
        weak_quality=float(data.weak.mean()),
        strong_quality=float(data.strong.mean()),
        curves={
            "router": pgr_curve(s, data.weak, data.strong),
            "prompt length": pgr_curve(length, data.weak, data.strong),
            "random": pgr_curve(constant, data.weak, data.strong),
        },
        gain_over_length=apgr_delta_interval(s, length, data.weak, data.strong, resamples)
        if resamples > 0
        else None,
    )


def format_report(name: str, report: EvalReport) -> str:
    """A plain-text table of the router beside the baselines."""
    lines = [
        f"{name}: {report.rows} prompts",
        f"  {'router':<16}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}",
    ]
    for label, m in (
        ("trained", report.router),
        ("prompt length", report.prompt_length),
        ("random", report.random),
    ):
        lines.append(f"  {label:<16}{m.apgr:>8.3f}{m.cpt50:>9.1%}{m.cpt80:>10.1%}")
    if report.gain_over_length is not None:
        lines.append(
            f"  trained - length APGR {report.gain_over_length.format()} "
            f"(95% paired bootstrap over prompts)"
        )
    lines.append(f"  always-weak quality   {report.weak_quality:.3f} (strong share 0%)")
    lines.append(f"  always-strong quality {report.strong_quality:.3f} (strong share 100%)")
    return "\n".join(lines)


COLOURS = {"router": "#1f77b4", "prompt length": "#ff7f0e", "random": "#7f7f7f"}


def _polyline(
    curve: Curve, width: int, height: int, lo: float, hi: float, max_points: int = 400
) -> str:
    span = (hi - lo) or 1.0
    keep = np.unique(np.linspace(0, len(curve.share) - 1, max_points).round().astype(np.int64))
    pts = [
        f"{40 + x * width:.1f},{10 + (1 - (q - lo) / span) * height:.1f}"
        for x, q in zip(curve.share[keep], curve.quality[keep], strict=True)
    ]
    return " ".join(pts)


def render_html(title: str, report: EvalReport) -> str:
    """A self-contained HTML page: quality against strong-call share, with the metrics table."""
    width, height = 560, 320
    lo, hi = sorted((report.weak_quality, report.strong_quality))
    qs = [float(c.quality.min()) for c in report.curves.values()] + [lo]
    qh = [float(c.quality.max()) for c in report.curves.values()] + [hi]
    lo, hi = min(qs), max(qh)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 60}" height="{height + 50}">',
        f'<rect x="40" y="10" width="{width}" height="{height}" fill="none" stroke="#999"/>',
    ]
    for name, curve in report.curves.items():
        colour = COLOURS.get(name, "#2ca02c")
        pts = _polyline(curve, width, height, lo, hi)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
    for i, (name, colour) in enumerate(COLOURS.items()):
        parts.append(
            f'<text x="{50 + i * 140}" y="{height + 40}" fill="{colour}">{html.escape(name)}</text>'
        )
    parts.append(f'<text x="40" y="{height + 25}">0% strong</text>')
    parts.append(f'<text x="{width - 30}" y="{height + 25}">100% strong</text>')
    parts.append(f'<text x="0" y="20">{hi:.2f}</text><text x="0" y="{height + 10}">{lo:.2f}</text>')
    parts.append("</svg>")
    table = html.escape(format_report(title, report))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>Mean quality of routed answers against the share of "
        "prompts sent to the strong model.</p>"
        f"{''.join(parts)}<pre>{table}</pre></body></html>\n"
    )


def write_plot(path: Path, title: str, report: EvalReport) -> Path:
    """Write :func:`render_html` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(title, report), encoding="utf-8")
    return path


def _interval(entry: object, key: str) -> str:
    if not isinstance(entry, dict) or key not in entry:
        return ""
    iv = entry[key]
    return f"  [{iv['low']:+.3f}, {iv['high']:+.3f}]"


def format_lofo(validation: dict[str, object]) -> str:
    """A plain-text table of a leave-one-family-out validation (``Validation.as_dict()``).

    Where a family carries ``gain_over_length`` (``router eval``), its paired bootstrap
    intervals follow the gains they belong to.
    """
    fams = validation["families"]
    chosen = validation["chosen"]
    means = validation["mean"]
    assert isinstance(fams, dict) and isinstance(chosen, dict) and isinstance(means, dict)
    nested = "nested_router_apgr" in means
    intervals = any("gain_over_length" in f for f in fams.values())
    width = 20 if intervals else 0
    head = f"  {'held-out family':<16}{'rows':>7}{'APGR':>8}{'length':>8}{'gain':>8}"
    head += f" {'(95%)':<{width - 1}}" if intervals else ""
    head += f"{'CPT(50%)':>10}{'length':>8}" + (f"{'nested':>8}" if nested else "")
    head += f"{'gain':>8}  (95%)" if nested and intervals else ""
    lines = ["leave-one-family-out: each family scored by heads fitted on the other families", head]
    for name, f in fams.items():
        r, b = f["router"], f["prompt_length"]
        ci = f.get("gain_over_length")
        line = f"  {name:<16}{f['rows']:>7}{r['apgr']:>8.3f}{b['apgr']:>8.3f}"
        line += f"{r['apgr'] - b['apgr']:>+8.3f}"
        line += f"{_interval(ci, 'router'):<{width}}" if intervals else ""
        line += f"{r['cpt50']:>10.1%}{b['cpt50']:>8.1%}"
        if nested and "nested_router" in f:
            n = f["nested_router"]["apgr"]
            line += f"{n:>8.3f}"
            if intervals:
                line += f"{n - b['apgr']:>+8.3f}{_interval(ci, 'nested_router')}"
        lines.append(line.rstrip())
    line = f"  {'mean':<16}{'':>7}{means['router_apgr']:>8.3f}{means['prompt_length_apgr']:>8.3f}"
    line += f"{means['router_apgr'] - means['prompt_length_apgr']:>+8.3f}"
    if nested:
        line += f"{'':>{18 + width}}{means['nested_router_apgr']:>8.3f}"
        if intervals:
            line += f"{means['nested_router_apgr'] - means['prompt_length_apgr']:>+8.3f}"
    lines.append(line)
    lines.append(
        f"  chosen: learned {chosen['learned']}, λ {chosen['lam']:g}, structure "
        f"{chosen['structure']:g}; beats length on every family: "
        f"{'yes' if validation.get('beats_length_on_every_family') else 'no'}"
    )
    if intervals:
        lines.append(
            "  (95%): paired bootstrap interval of the gain over prompt length (resampled prompts);"
            " one that holds 0 cannot tell the two apart"
        )
    return "\n".join(lines)
