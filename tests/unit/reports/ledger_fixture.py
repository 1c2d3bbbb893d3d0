"""A hand-built ledger whose aggregates are worked out by hand in the tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from router.ledger.record import LedgerRecord

BASE_S = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()
"""2026-11-23 10:00 UTC (Unix seconds)."""
DAY_S = 86400


def rec(**kw: Any) -> LedgerRecord:
    """A record with defaults for everything the tests do not care about."""
    base: dict[str, Any] = {
        "ts": BASE_S,
        "request_id": "r",
        "tenant": "default",
        "key_id": None,
        "team": None,
        "route": "auto",
        "tier": "local",
        "reason": "test",
        "score": 0.5,
        "model": "mock-local",
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "estimated": False,
        "cost_usd": 0.0,
        "counterfactual_usd": 0.0,
        "cache": "miss",
        "latency_ms": 0.0,
        "policy_hash": "p",
        "status": 200,
        "error": None,
        "stream": False,
        "fallback": False,
    }
    return LedgerRecord(**{**base, **kw})


def ledger() -> list[LedgerRecord]:
    """Five records over two days, two teams and one without a team.

    ====  =====  ====  ===========  ======  =======  ======  =====  ========  =====  ======
    #     team   key   model        tier    tokens   cost    cf     cache     ms     status
    ====  =====  ====  ===========  ======  =======  ======  =====  ========  =====  ======
    1     a      k1    mock-local   local   100+50   0.01    0.10   miss      100    200
    2     a      k1    mock-hosted  hosted  200+100  0.20    0.20   miss      300    200
    3     b      k2    mock-local   local   100+100  0.00    0.05   exact     10     200
    4     b      k2    mock-local   local   50+50    0.02    0.08   bypass    200    502
    5     -      -     mock-hosted  hosted  10+10    0.00    0.03   semantic  20     200
    ====  =====  ====  ===========  ======  =======  ======  =====  ========  =====  ======

    Records 1-4 are on 2026-11-23 (10:00, 10:10, 11:00, 11:30), record 5 on 2026-11-25 10:00.
    """
    return [
        rec(request_id="r1", ts=BASE_S, team="a", key_id="k1", prompt_tokens=100,
            completion_tokens=50, cost_usd=0.01, counterfactual_usd=0.10, latency_ms=100.0),
        rec(request_id="r2", ts=BASE_S + 600, team="a", key_id="k1", model="mock-hosted",
            tier="hosted", prompt_tokens=200, completion_tokens=100, cost_usd=0.20,
            counterfactual_usd=0.20, latency_ms=300.0),
        rec(request_id="r3", ts=BASE_S + 3600, team="b", key_id="k2", prompt_tokens=100,
            completion_tokens=100, cost_usd=0.0, counterfactual_usd=0.05, cache="exact",
            latency_ms=10.0),
        rec(request_id="r4", ts=BASE_S + 5400, team="b", key_id="k2", prompt_tokens=50,
            completion_tokens=50, cost_usd=0.02, counterfactual_usd=0.08, cache="bypass",
            latency_ms=200.0, status=502, error="upstream_error"),
        rec(request_id="r5", ts=BASE_S + 2 * DAY_S, model="mock-hosted", tier="hosted",
            prompt_tokens=10, completion_tokens=10, cost_usd=0.0, counterfactual_usd=0.03,
            cache="semantic", latency_ms=20.0),
    ]  # fmt: skip
