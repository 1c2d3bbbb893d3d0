"""Aggregates of the hand-built ledger (tests/unit/reports/ledger_fixture.py), worked by hand."""

from __future__ import annotations

import pytest

from router.reports.aggregate import aggregate, bucket_width_s, parse_by, percentile
from tests.unit.reports.ledger_fixture import BASE_S, DAY_S, ledger, rec

approx = pytest.approx


def test_totals_match_hand_computed_numbers() -> None:
    t = aggregate(ledger()).totals
    assert t["requests"] == 5
    assert t["errors"] == 1
    assert (t["prompt_tokens"], t["completion_tokens"], t["total_tokens"]) == (460, 310, 770)
    # spend 0.01 + 0.20 + 0 + 0.02 + 0; baseline 0.10 + 0.20 + 0.05 + 0.08 + 0.03
    assert t["spend_usd"] == approx(0.23)
    assert t["counterfactual_usd"] == approx(0.46)
    assert t["savings_usd"] == approx(0.23)
    # cache hits: #3 (0.05 - 0) and #5 (0.03 - 0); routing is the rest
    assert t["cache_savings_usd"] == approx(0.08)
    assert t["routing_savings_usd"] == approx(0.15)
    assert t["savings_pct"] == approx(50.0)
    # 2 hits over 4 lookups (#4 bypassed the cache)
    assert t["cache_hits"] == 2
    assert t["cache_hit_rate"] == approx(0.5)
    assert t["tier_requests"] == {"hosted": 2, "local": 3}
    assert t["tier_share"] == {"hosted": approx(0.4), "local": approx(0.6)}
    assert t["tier_spend_usd"] == {"hosted": approx(0.20), "local": approx(0.03)}
    # latencies 10, 20, 100, 200, 300: p50 at rank 2 = 100; p95 at 3.8 = 200 + 0.8 * 100
    assert t["latency_p50_ms"] == approx(100.0)
    assert t["latency_p95_ms"] == approx(280.0)


def test_group_by_team_sorted_by_spend() -> None:
    groups = aggregate(ledger(), by=("team",)).groups
    assert [g["key"] for g in groups] == [{"team": "a"}, {"team": "b"}, {"team": "-"}]
    a, b, none = groups
    assert (a["requests"], a["spend_usd"], a["counterfactual_usd"]) == (
        2,
        approx(0.21),
        approx(0.30),
    )
    assert a["routing_savings_usd"] == approx(0.09)
    assert a["cache_savings_usd"] == approx(0.0)
    assert a["cache_hit_rate"] == approx(0.0)
    assert a["tier_share"] == {"hosted": approx(0.5), "local": approx(0.5)}
    assert a["latency_p50_ms"] == approx(200.0)  # between 100 and 300
    assert a["latency_p95_ms"] == approx(290.0)  # 100 + 0.95 * 200
    assert (b["spend_usd"], b["counterfactual_usd"]) == (approx(0.02), approx(0.13))
    assert b["cache_savings_usd"] == approx(0.05)
    assert b["routing_savings_usd"] == approx(0.06)
    assert b["cache_hit_rate"] == approx(1.0)  # one lookup (#3), one hit; #4 bypassed
    assert b["errors"] == 1
    assert b["latency_p50_ms"] == approx(105.0)
    assert (none["spend_usd"], none["cache_savings_usd"]) == (approx(0.0), approx(0.03))


def test_group_by_several_fields_and_day() -> None:
    r = aggregate(ledger(), by=("day", "model"))
    keys = {(g["key"]["day"], g["key"]["model"]): g["requests"] for g in r.groups}
    assert keys == {
        ("2026-11-23", "mock-local"): 3,
        ("2026-11-23", "mock-hosted"): 1,
        ("2026-11-25", "mock-hosted"): 1,
    }
    by_key = aggregate(ledger(), by=("key",)).groups
    assert {g["key"]["key"]: g["requests"] for g in by_key} == {"k1": 2, "k2": 2, "-": 1}
    assert sum(g["spend_usd"] for g in by_key) == approx(0.23)


def test_time_range_is_inclusive_exclusive() -> None:
    r = aggregate(ledger(), since_s=BASE_S + 600, until_s=BASE_S + DAY_S)
    # #2, #3, #4 (#1 is before since, #5 after until)
    assert r.totals["requests"] == 3
    assert r.totals["spend_usd"] == approx(0.22)
    assert aggregate(ledger(), since_s=BASE_S + 3 * DAY_S).totals["requests"] == 0


def test_series_buckets() -> None:
    s = aggregate(ledger()).series
    assert s["bucket_s"] == 3600  # two days span 48 hourly buckets (< 60)
    assert len(s["buckets"]) == 49
    assert s["buckets"][0] == BASE_S
    assert s["teams"]["a"][0] == approx(0.21)
    assert s["teams"]["b"][1] == approx(0.02)
    assert s["requests"][:3] == [2, 2, 0]
    assert s["requests"][-1] == 1
    assert s["cache_hit_rate"][:3] == [approx(0.0), approx(1.0), None]
    assert s["cum_spend"][-1] == approx(0.23)
    assert s["cum_counterfactual"][-1] == approx(0.46)
    assert s["latency_p50_ms"][0] == approx(200.0)


def test_empty_ledger() -> None:
    r = aggregate([])
    assert r.totals["requests"] == 0
    assert r.totals["savings_pct"] is None
    assert r.totals["cache_hit_rate"] is None
    assert r.totals["latency_p50_ms"] is None
    assert r.series["buckets"] == []


def test_percentile_interpolates() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == approx(2.5)
    assert percentile([float(i) for i in range(1, 101)], 0.95) == approx(95.05)


def test_parse_by() -> None:
    assert parse_by("team, model,team") == ("team", "model")
    assert parse_by("") == ()
    with pytest.raises(ValueError, match="colour"):
        parse_by("team,colour")


def test_bucket_width() -> None:
    assert bucket_width_s(0, 30) == 60
    assert bucket_width_s(0, 3 * 3600) == 300
    assert bucket_width_s(0, 30 * DAY_S) == 86400


def test_unmetered_and_reclaimed_spend_are_shown_apart() -> None:
    rows = [
        *ledger(),
        rec(request_id="u1", cost_usd=0.04, unmetered=True),
        rec(request_id="x1", cost_usd=0.05, error="reclaimed", status=0, tier=None),
        rec(request_id="x1", cost_usd=-0.02, error="reconciled", status=0, tier=None),
    ]
    t = aggregate(rows).totals
    assert t["requests"] == 7  # the adjustment row is money, not a request
    assert t["spend_usd"] == approx(0.23 + 0.04 + 0.05 - 0.02)
    assert t["unmetered_usd"] == approx(0.04)
    assert t["reclaimed_usd"] == approx(0.03) and t["reclaimed_requests"] == 1
    assert aggregate(ledger()).totals["unmetered_usd"] == 0
