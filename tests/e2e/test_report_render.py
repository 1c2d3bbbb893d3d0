"""The HTML report, the terminal table and the dashboard render in headless Chromium.

Each view is opened in a real browser (over the DevTools protocol, :mod:`tests.e2e.cdp`): its
five charts must be drawn with data marks, and the page must log no console error, uncaught
exception or failed load. The dashboard is signed into through its form and must refresh
itself. Screenshots go to a temporary directory, or to ``docs/img/`` (the ones in
``docs/reports.md``) with ``ROUTER_UPDATE_SCREENSHOTS=1``.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped, saying so, without it.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aredis
from rich.console import Console
from rich.terminal_theme import MONOKAI

from router.policy.load import load_policy
from router.reports.aggregate import Report
from router.reports.render_html import render_html
from router.reports.render_text import budget_table, metrics_table
from router.reports.source import build_report, policy_tiers
from tests.e2e.cdp import Page, chromium_page, find_chromium
from tests.integration.reports_support import ADMIN_KEY, Stack, history, seed, traffic

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="headless Chromium is not installed (apt-get install -y chromium); CI installs it",
    ),
]
ROOT = Path(__file__).resolve().parents[2]
CHARTS = ["spend-by-team", "savings", "tier-share", "cache-hit-rate", "latency"]
CHART_STATE = """(() => Array.from(document.querySelectorAll('figure.chart')).map(f => ({
  id: f.dataset.chart,
  marks: f.querySelectorAll('.mark').length,
  empty: f.querySelectorAll('.empty').length,
  width: Math.round(f.querySelector('svg').getBoundingClientRect().width),
})))()"""
"""Per chart: its id, how many data marks it drew, whether it is empty, its rendered width."""


TERMINAL = (
    '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
    "<style>body{{margin:0;padding:14px;color:{foreground};background:{background}}}"
    "pre{{font:13px/1.35 'DejaVu Sans Mono',monospace;margin:0}}</style></head>"
    "<body><pre><code>$ router report --by team\n{code}</code></pre></body></html>"
)
"""A terminal-like page for rich's HTML export (rich's SVG export loads a font from a CDN)."""


@pytest.fixture(scope="module")
def stack(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """20 hours of seeded history plus real traffic through the gateway, on an emptied Redis."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    seed(redis_server, history(time.time()))
    with traffic(tmp_path_factory.mktemp("render"), redis_server) as s:
        yield s


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``docs/img`` when updating the docs, else a temporary directory."""
    if os.environ.get("ROUTER_UPDATE_SCREENSHOTS") == "1":
        return ROOT / "docs" / "img"
    return tmp_path


async def _report(stack: Stack) -> Report:
    policy = load_policy(stack.gateway.policy, env={"MOCK_UPSTREAM_URL": "http://unused"}).policy
    client = aredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        now = time.time()
        return await build_report(
            client, now - 86400, now, ("team",), policy.budgets, policy_tiers(policy)
        )
    finally:
        await client.aclose()


def _assert_charts(state: list[dict[str, object]]) -> None:
    assert [c["id"] for c in state] == CHARTS
    for c in state:
        assert c["empty"] == 0, c
        assert isinstance(c["marks"], int) and c["marks"] >= 2, c
        assert isinstance(c["width"], int) and c["width"] >= 300, c


def _save(path: Path, png: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


async def _open(page: Page, url: str) -> None:
    await page.navigate(url)
    assert page.problems == [], page.problems


async def test_html_report_renders_offline(stack: Stack, tmp_path: Path, shots: Path) -> None:
    report = await _report(stack)
    assert report.totals["requests"] > 400
    out = tmp_path / "report.html"
    out.write_text(render_html(report))
    assert CHROMIUM is not None
    async with chromium_page(CHROMIUM, tmp_path / "profile") as page:
        await _open(page, out.as_uri())
        _assert_charts(await page.evaluate(CHART_STATE))
        assert await page.evaluate("document.querySelectorAll('#groups tr').length") >= 4
        assert await page.evaluate("document.querySelectorAll('#budgets tr').length") == 3
        assert await page.evaluate("document.scripts.length") == 0
        _save(shots / "report-html.png", await page.screenshot(1280))
        assert page.problems == [], page.problems


async def test_table_view_renders(stack: Stack, tmp_path: Path, shots: Path) -> None:
    report = await _report(stack)
    console = Console(file=io.StringIO(), width=170, record=True, force_terminal=True)
    console.print(metrics_table(report))
    console.print(budget_table(report))
    html = tmp_path / "table.html"
    page_html = console.export_html(theme=MONOKAI, inline_styles=True, code_format=TERMINAL)
    html.write_text(page_html)
    assert CHROMIUM is not None
    async with chromium_page(CHROMIUM, tmp_path / "profile") as page:
        await _open(page, html.as_uri())
        text = await page.evaluate("document.documentElement.textContent")
        assert "search" in text and "(total)" in text
        _save(shots / "report-table.png", await page.screenshot(1400))
        assert page.problems == [], page.problems


async def test_dashboard_signs_in_and_refreshes(stack: Stack, tmp_path: Path, shots: Path) -> None:
    assert CHROMIUM is not None
    async with chromium_page(CHROMIUM, tmp_path / "profile") as page:
        await _open(page, stack.gateway.base_url + "/dashboard")
        assert await page.evaluate("document.querySelectorAll('figure.chart').length") == 0
        assert await page.evaluate("!!document.querySelector('form.login input[type=password]')")
        _save(shots / "dashboard-login.png", await page.screenshot(1000))
        await page.evaluate(
            f"document.getElementById('key').value = {ADMIN_KEY!r};"
            "document.querySelector('form.login').submit(); true"
        )
        first = await page.wait_for("document.body.getAttribute('data-refreshed')", 20)
        assert await page.evaluate("location.pathname") == "/dashboard"
        _assert_charts(await page.evaluate(CHART_STATE))
        # it refreshes by itself (every 5 s), and the controls re-query
        await page.wait_for(f"document.body.getAttribute('data-refreshed') !== '{first}'", 15)
        await page.evaluate(
            "const s = document.getElementById('by'); s.value = 'team,model';"
            "s.dispatchEvent(new Event('change')); true"
        )
        await page.wait_for("document.querySelectorAll('#groups th').length === 12", 15)
        _assert_charts(await page.evaluate(CHART_STATE))
        assert "admin" not in await page.evaluate("document.cookie")  # HttpOnly: not readable
        _save(shots / "dashboard.png", await page.screenshot(1280))
        assert page.problems == [], page.problems
