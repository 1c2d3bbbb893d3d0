"""Budget store unreachable: ``fail_closed`` answers 503, ``fail_open`` serves a local allowance."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.redis.embedded import EmbeddedRedis
from router.settings import Settings
from router.testing.mock_process import running_mock
from tests.integration.budget_support import write_policy

pytestmark = pytest.mark.integration
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 32}
HEADERS = {"x-router-route": "hosted"}


async def _statuses_after_outage(tmp_path: Path, budgets: str, n: int) -> list[int]:
    server = EmbeddedRedis(tmp_path / "r", transport="tcp", appendfsync="no")
    await server.astart()
    try:
        async with running_mock() as mock_url:
            path = write_policy(
                tmp_path, auth="none", budgets=budgets, hosted_upstream="mock-tokens-30",
                hosted_fallbacks="[]",
            )  # fmt: skip
            policy = path.read_text().replace("${MOCK_UPSTREAM_URL}", mock_url)
            path.write_text(policy)
            app = create_app(Settings(policy_path=path, redis_url=server.url, access_log=False))
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                    first = await c.post("/v1/chat/completions", json=BODY, headers=HEADERS)
                    assert first.status_code == 200
                    await server.astop()
                    out = []
                    for _ in range(n):
                        r = await c.post("/v1/chat/completions", json=BODY, headers=HEADERS)
                        out.append(r.status_code)
                        if r.status_code == 503:
                            assert r.json()["error"]["code"] == "budget_store_unavailable"
                    return out
    finally:
        await server.astop()


async def test_fail_closed_refuses(tmp_path: Path) -> None:
    budgets = "  global: {limit_usd: 10}\n  on_store_error: fail_closed\n"
    assert await _statuses_after_outage(tmp_path, budgets, 3) == [503, 503, 503]


async def test_fail_open_serves_the_local_allowance(tmp_path: Path) -> None:
    # each request may cost up to (27 x $2.5 + 32 x $10) / 1e6 = $0.0003875 (worst case)
    budgets = (
        "  global: {limit_usd: 10}\n  on_store_error: fail_open\n  local_allowance_usd: 0.001\n"
    )
    statuses = await _statuses_after_outage(tmp_path, budgets, 8)
    assert statuses.count(200) >= 2 and statuses[-1] == 503, statuses
