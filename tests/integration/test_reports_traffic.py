"""Reports from real traffic (gateway + mock upstream + Redis): CLI views and admin endpoints."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from router.ledger.record import LedgerRecord
from router.redis import keys as lk
from tests.integration.reports_support import ADMIN_KEY, Stack, traffic

pytestmark = [pytest.mark.integration, pytest.mark.clock]
ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("spend-by-team", "savings", "tier-share", "cache-hit-rate", "latency")


@pytest.fixture(scope="module")
def stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """18 requests from two teams on an emptied Redis."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    with traffic(tmp_path_factory.mktemp("reports"), redis_server) as s:
        yield s


def _records(redis_url: str) -> list[LedgerRecord]:
    client: Any = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [LedgerRecord.from_fields(f) for _, f in client.xrange(lk.stream_key())]
    finally:
        client.close()


def _cli(stack: Stack, *args: str) -> str:
    env = {**os.environ, "REDIS_URL": stack.redis_url, "MOCK_UPSTREAM_URL": "http://unused"}
    policy = str(stack.gateway.policy)
    cmd = [sys.executable, "-m", "router.cli.main", "report", "--policy", policy, *args]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_json_report_matches_the_ledger(stack: Stack) -> None:
    records = _records(stack.redis_url)
    doc = orjson.loads(_cli(stack, "--since", "1h", "--by", "team", "--format", "json"))
    t = doc["totals"]
    assert t["requests"] == len(records) == sum(stack.sent.values())
    assert t["spend_usd"] == pytest.approx(math.fsum(r.cost_usd for r in records), abs=1e-9)
    cf = math.fsum(r.counterfactual_usd for r in records)
    assert t["counterfactual_usd"] == pytest.approx(cf, abs=1e-9)
    assert t["spend_usd"] < t["counterfactual_usd"]  # some traffic went to the local tier
    assert set(t["tier_share"]) == {"local", "hosted"}
    assert t["latency_p50_ms"] <= t["latency_p95_ms"]
    teams = {g["key"]["team"]: g for g in doc["groups"]}
    assert {k: g["requests"] for k, g in teams.items()} == stack.sent
    budgets = {b["team"]: b for b in doc["budgets"]}
    assert set(budgets) == {"search", "support"}
    for team, b in budgets.items():
        # the budget counters settled the same costs the ledger recorded
        assert b["spent_usd"] == pytest.approx(teams[team]["spend_usd"], abs=1e-8)
        assert b["used_pct"] == pytest.approx(100 * b["spent_usd"] / b["limit_usd"], rel=1e-3)


def test_csv_table_and_html_views(stack: Stack, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(_cli(stack, "--by", "team,model", "--format", "csv"))))
    assert rows[-1]["team"] == "(total)"
    assert int(rows[-1]["requests"]) == sum(stack.sent.values())
    assert sum(int(r["requests"]) for r in rows[:-1]) == sum(stack.sent.values())
    table = _cli(stack, "--by", "team", "--format", "table")
    assert "search" in table and "support" in table and "Team budgets" in table
    out = tmp_path / "report.html"
    _cli(stack, "--by", "team", "--format", "html", "--output", str(out))
    html = out.read_text()
    for chart in CHARTS:
        assert f'data-chart="{chart}"' in html
    assert "No data in this range" not in html


def test_summary_endpoint_needs_the_admin_key(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway.base_url, timeout=30) as c:
        assert c.get("/admin/reports/summary").status_code == 401
        bad = {"authorization": "Bearer nope"}
        assert c.get("/admin/reports/summary", headers=bad).status_code == 401
        user = {"authorization": f"Bearer {stack.keys['search']}"}
        assert c.get("/admin/reports/summary", headers=user).status_code == 401
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        r = c.get("/admin/reports/summary", params={"by": "team,model"}, headers=admin)
        assert r.status_code == 200
        doc = r.json()
        assert doc["totals"]["requests"] == sum(stack.sent.values())
        assert doc["by"] == ["team", "model"]
        assert r.headers["cache-control"] == "no-store"
        r = c.get("/admin/reports/summary", params={"by": "colour"}, headers=admin)
        assert r.status_code == 400 and "colour" in r.json()["error"]["message"]
        r = c.get("/admin/reports/summary", params={"since": "yesterday-ish"}, headers=admin)
        assert r.status_code == 400
        r = c.get("/admin/reports/summary", params={"since": "-1h", "until": "-2h"}, headers=admin)
        assert r.status_code == 400


def test_dashboard_sign_in_session_and_fragment(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway.base_url, timeout=30) as c:
        page = c.get("/dashboard")
        assert page.status_code == 200
        assert 'action="/dashboard/login"' in page.text and "data-chart" not in page.text
        assert c.get("/dashboard/fragment").status_code == 401
        wrong = c.post("/dashboard/login", data={"key": "guess"})
        assert wrong.status_code == 401 and "not the admin key" in wrong.text
        assert not c.cookies
        ok = c.post("/dashboard/login", data={"key": ADMIN_KEY})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert ADMIN_KEY not in cookie
        page = c.get("/dashboard")
        assert page.status_code == 200
        for chart in CHARTS:
            assert f'data-chart="{chart}"' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'nonce-" in csp and "connect-src 'self'" in csp
        frag = c.get("/dashboard/fragment", params={"since": "-1h", "by": "model"})
        assert frag.status_code == 200 and 'data-chart="latency"' in frag.text
        assert "mock-hosted" in frag.text
        # the cookie also opens the JSON endpoint (same origin, SameSite=Strict)
        assert c.get("/admin/reports/summary").status_code == 200
        c.post("/dashboard/logout")
        assert c.get("/dashboard/fragment").status_code == 401
