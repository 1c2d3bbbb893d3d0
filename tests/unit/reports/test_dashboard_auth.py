"""The report routes refuse before touching any service: admin disabled, no key, wrong key."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from router.api.dashboard import ROUTES


def _client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=Starlette(routes=ROUTES))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_disabled_without_admin_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROUTER_ADMIN_KEY", raising=False)
    async with _client() as c:
        r = await c.get("/admin/reports/summary", headers={"authorization": "Bearer x"})
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "admin_disabled"
        assert (await c.get("/dashboard")).status_code == 403
        assert (await c.post("/dashboard/login", data={"key": "x"})).status_code == 403


async def test_unauthenticated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_ADMIN_KEY", "s3cret")
    async with _client() as c:
        assert (await c.get("/admin/reports/summary")).status_code == 401
        assert (await c.get("/dashboard/fragment")).status_code == 401
        bad = {"authorization": "Bearer s3cre"}
        assert (await c.get("/admin/reports/summary", headers=bad)).status_code == 401
        forged = {"cookie": "router_dashboard=v1.99999999999.deadbeef"}
        assert (await c.get("/dashboard/fragment", headers=forged)).status_code == 401
        page = await c.get("/dashboard")
        assert page.status_code == 200 and "Sign in" in page.text
        assert "nonce-" not in page.headers["content-security-policy"]  # no script at all
        big = await c.post("/dashboard/login", data={"key": "x" * 5000})
        assert big.status_code == 413
