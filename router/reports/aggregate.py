"""Aggregates of ledger records: totals, groups and time series, in one pass.

Definitions (money in US dollars, latency in milliseconds, shares and rates in [0, 1]):

* ``spend_usd``: the sum of ``cost_usd``, what was actually paid.
* ``counterfactual_usd``: the sum of ``counterfactual_usd``, what the same tokens would have cost
  on each request's strongest tier (the all-hosted baseline).
* ``savings_usd = counterfactual_usd - spend_usd``, split into ``cache_savings_usd`` (requests
  answered from the cache, ``exact`` or ``semantic``) and ``routing_savings_usd`` (the rest:
  requests the router sent to a cheaper tier).
* ``cache_hit_rate``: hits over requests that consulted the cache (``miss``, ``exact`` or
  ``semantic``; ``bypass`` is left out); None when none did.
* ``tier_share``: the share of requests per tier (``-`` when no tier was decided);
  ``tier_requests`` and ``tier_spend_usd`` are the counts and spend behind it.
* ``unmetered_usd``: spend served under ``fail_open`` while Redis was unreachable (in
  ``spend_usd`` too; it reached the budget counters only once Redis was back).
* ``reclaimed_usd`` / ``reclaimed_requests``: holds of dead replicas charged at their reserved
  amount (``reclaimed`` rows; in ``spend_usd`` too), net of the adjustment rows of
  ``router ledger reconcile`` (``reconciled``: money only, not counted as requests).
* ``latency_p50_ms`` / ``latency_p95_ms``: exact percentiles of ``latency_ms`` with linear
  interpolation between order statistics (numpy's default); None without records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.ledger.record import RECLAIMED, RECONCILED, LedgerRecord

GROUP_FIELDS = ("team", "key", "model", "route", "tier", "day")
"""What ``--by`` accepts."""
HITS = ("exact", "semantic")
NONE_LABEL = "-"
"""Label of a missing team, key, route or tier."""
BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
"""Candidate widths of a time-series bucket (seconds); the smallest giving <= MAX_BUCKETS."""
MAX_BUCKETS = 60


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (``q`` in [0, 1]) of ascending ``sorted_values`` (linear interp.)."""
    n = len(sorted_values)
    if n == 0:
        return None
    pos = q * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def group_value(rec: LedgerRecord, name: str) -> str:
    """The value of grouping field ``name`` (one of :data:`GROUP_FIELDS`) for ``rec``."""
    if name == "day":
        d = rec.day
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    raw = {
        "team": rec.team,
        "key": rec.key_id,
        "model": rec.model,
        "route": rec.route,
        "tier": rec.tier,
    }[name]
    return raw or NONE_LABEL


def parse_by(text: str | None) -> tuple[str, ...]:
    """``"team,model"`` -> ``("team", "model")``; raises ValueError naming an unknown field."""
    if not text:
        return ()
    out: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if not name:
            continue
        if name not in GROUP_FIELDS:
            raise ValueError(f"unknown --by field {name!r}: use {', '.join(GROUP_FIELDS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


@dataclass(slots=True)
class Acc:
    """Running sums of one group (money in US dollars, latency in milliseconds)."""

    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: list[float] = field(default_factory=list)
    counterfactual: list[float] = field(default_factory=list)
    cache_saved: list[float] = field(default_factory=list)
    cache_lookups: int = 0
    cache_hits: int = 0
    tiers: dict[str, int] = field(default_factory=dict)
    tier_spend: dict[str, list[float]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    unmetered: list[float] = field(default_factory=list)
    reclaimed: list[float] = field(default_factory=list)
    reclaimed_requests: int = 0

    def add(self, rec: LedgerRecord) -> None:
        """Count ``rec``."""
        if rec.unmetered:
            self.unmetered.append(rec.cost_usd)
        if rec.error in (RECLAIMED, RECONCILED):
            self.reclaimed.append(rec.cost_usd)
            if rec.error == RECONCILED:  # an adjustment of a reclaimed row, not a request
                self.spend.append(rec.cost_usd)
                return
            self.reclaimed_requests += 1
        self.requests += 1
        self.errors += rec.status >= 400
        self.prompt_tokens += rec.prompt_tokens
        self.completion_tokens += rec.completion_tokens
        self.spend.append(rec.cost_usd)
        self.counterfactual.append(rec.counterfactual_usd)
        if rec.cache != "bypass":
            self.cache_lookups += 1
        if rec.cache in HITS:
            self.cache_hits += 1
            self.cache_saved.append(rec.counterfactual_usd - rec.cost_usd)
        tier = rec.tier or NONE_LABEL
        self.tiers[tier] = self.tiers.get(tier, 0) + 1
        self.tier_spend.setdefault(tier, []).append(rec.cost_usd)
        self.latencies.append(rec.latency_ms)

    def metrics(self) -> dict[str, Any]:
        """The aggregates (see the module docstring), JSON-safe, money rounded to 1e-9 USD."""
        spend = math.fsum(self.spend)
        cf = math.fsum(self.counterfactual)
        saved = cf - spend
        cache_saved = math.fsum(self.cache_saved)
        lat = sorted(self.latencies)
        n = self.requests
        p50, p95 = percentile(lat, 0.50), percentile(lat, 0.95)
        return {
            "requests": n,
            "errors": self.errors,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "spend_usd": round(spend, 9),
            "counterfactual_usd": round(cf, 9),
            "savings_usd": round(saved, 9),
            "routing_savings_usd": round(saved - cache_saved, 9),
            "cache_savings_usd": round(cache_saved, 9),
            "savings_pct": round(100 * saved / cf, 4) if cf > 0 else None,
            "cache_hits": self.cache_hits,
            "cache_hit_rate": (
                round(self.cache_hits / self.cache_lookups, 6) if self.cache_lookups else None
            ),
            "tier_requests": dict(sorted(self.tiers.items())),
            "tier_share": {t: round(c / n, 6) for t, c in sorted(self.tiers.items())},
            "tier_spend_usd": {
                t: round(math.fsum(v), 9) for t, v in sorted(self.tier_spend.items())
            },
            "latency_p50_ms": None if p50 is None else round(p50, 3),
            "latency_p95_ms": None if p95 is None else round(p95, 3),
            "unmetered_usd": round(math.fsum(self.unmetered), 9),
            "reclaimed_usd": round(math.fsum(self.reclaimed), 9),
            "reclaimed_requests": self.reclaimed_requests,
        }


def bucket_width_s(first_ts: float, last_ts: float) -> int:
    """The smallest of :data:`BUCKETS_S` (seconds) that spans the range in at most MAX_BUCKETS."""
    span = max(0.0, last_ts - first_ts)
    for width in BUCKETS_S:
        if span / width < MAX_BUCKETS:
            return width
    return BUCKETS_S[-1]


@dataclass(slots=True)
class Report:
    """Everything a view shows; :meth:`to_json` is the wire form of the admin API."""

    since_s: float | None
    until_s: float | None
    by: tuple[str, ...]
    totals: dict[str, Any]
    groups: list[dict[str, Any]]
    series: dict[str, Any]
    budgets: list[dict[str, Any]] = field(default_factory=list)
    generated_s: float = 0.0
    quality: dict[str, Any] | None = None
    """Routing quality on the deployment's labels (:mod:`router.learning.quality`)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (times in Unix seconds)."""
        return {
            "since": self.since_s,
            "until": self.until_s,
            "generated_at": self.generated_s,
            "by": list(self.by),
            "totals": self.totals,
            "groups": self.groups,
            "budgets": self.budgets,
            "series": self.series,
            "routing_quality": self.quality,
        }


def _series(records: Sequence[LedgerRecord]) -> dict[str, Any]:
    """Series over fixed buckets: spend by team, cumulative spend vs baseline, cache, latency."""
    if not records:
        return {"bucket_s": 0, "buckets": [], "teams": {}, "spend": [], "counterfactual": [],
                "cum_spend": [], "cum_counterfactual": [], "requests": [], "cache_hit_rate": [],
                "latency_p50_ms": [], "latency_p95_ms": []}  # fmt: skip
    first = min(r.ts for r in records)
    last = max(r.ts for r in records)
    width = bucket_width_s(first, last)
    start = math.floor(first / width) * width
    count = int((last - start) // width) + 1
    per: list[Acc] = [Acc() for _ in range(count)]
    teams: dict[str, list[float]] = {}
    for rec in records:
        i = int((rec.ts - start) // width)
        per[i].add(rec)
        team = rec.team or NONE_LABEL
        teams.setdefault(team, [0.0] * count)[i] += rec.cost_usd
    ms = [a.metrics() for a in per]
    spend = [m["spend_usd"] for m in ms]
    cf = [m["counterfactual_usd"] for m in ms]
    return {
        "bucket_s": width,
        "buckets": [start + i * width for i in range(count)],
        "teams": {t: [round(v, 9) for v in vals] for t, vals in sorted(teams.items())},
        "spend": spend,
        "counterfactual": cf,
        "cum_spend": [round(math.fsum(spend[: i + 1]), 9) for i in range(count)],
        "cum_counterfactual": [round(math.fsum(cf[: i + 1]), 9) for i in range(count)],
        "requests": [m["requests"] for m in ms],
        "cache_hit_rate": [m["cache_hit_rate"] for m in ms],
        "latency_p50_ms": [m["latency_p50_ms"] for m in ms],
        "latency_p95_ms": [m["latency_p95_ms"] for m in ms],
    }


def aggregate(
    records: Iterable[LedgerRecord],
    by: Sequence[str] = (),
    since_s: float | None = None,
    until_s: float | None = None,
    now_s: float = 0.0,
) -> Report:
    """The report of ``records`` grouped by ``by`` (fields of :data:`GROUP_FIELDS`).

    Records outside ``[since_s, until_s)`` (Unix seconds) are left out. Groups are sorted by
    spend, highest first, then by key.
    """
    rows = [
        r
        for r in records
        if (since_s is None or r.ts >= since_s) and (until_s is None or r.ts < until_s)
    ]
    total = Acc()
    groups: dict[tuple[str, ...], Acc] = {}
    for rec in rows:
        total.add(rec)
        if by:
            key = tuple(group_value(rec, name) for name in by)
            groups.setdefault(key, Acc()).add(rec)
    out = [{"key": dict(zip(by, key, strict=True)), **acc.metrics()} for key, acc in groups.items()]
    out.sort(key=lambda g: (-g["spend_usd"], tuple(g["key"].values())))
    return Report(
        since_s=since_s,
        until_s=until_s,
        by=tuple(by),
        totals=total.metrics(),
        groups=out,
        series=_series(rows),
        generated_s=now_s,
    )
