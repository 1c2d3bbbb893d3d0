"""Virtual keys: the Redis store, its lookup cache, the admin HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis

from router.app import create_app
from router.keys.store import RedisKeyStore
from router.settings import Settings
from router.testing.mock_process import running_mock
from tests.integration.budget_support import router_cli, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.clock]
ADMIN = {"authorization": "Bearer admin-secret"}
MSG = [{"role": "user", "content": "hello there"}]


async def test_store_keeps_only_a_digest_and_looks_up(redis_client: aredis.Redis) -> None:
    store = RedisKeyStore(redis_client)
    secret, key = await store.create("search", budget_usd=2.0, rpm=5, models=("auto",))
    assert secret.startswith("sk-") and len(secret) > 40
    dump = [await redis_client.dump(k) async for k in redis_client.scan_iter("*")]
    assert all(secret.encode() not in (d or b"") for d in dump)
    p = await store.lookup(secret)
    assert p is not None and (p.key_id, p.team, p.tenant) == (key.id, "search", "search")
    assert await store.lookup(secret + "x") is None
    assert store.cached(key.id) == key
    updated = await store.update(key.id, budget_usd=None, rpm=10, window="day")
    assert (updated.budget_usd, updated.rpm, updated.window) == (None, 10, "day")
    assert [k.id for k in await store.list("search")] == [key.id]
    assert await store.list("other") == []
    past = datetime.now(UTC) - timedelta(days=1)
    old_secret, _ = await store.create("search", expires_at=past)
    assert await store.lookup(old_secret) is None


async def test_revocation_reaches_other_processes_within_the_cache_ttl(
    redis_client: aredis.Redis,
) -> None:
    a = RedisKeyStore(redis_client, cache_ttl_s=0.3)
    b = RedisKeyStore(redis_client, cache_ttl_s=0.3)
    secret, key = await a.create("search")
    assert await b.lookup(secret) is not None  # cached in b now
    await a.revoke(key.id)
    assert await a.lookup(secret) is None  # at once where it was revoked
    await asyncio.sleep(0.35)
    assert await b.lookup(secret) is None  # elsewhere within the cache TTL


@pytest.fixture
async def gateway_app(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_mock() as mock_url:
        monkeypatch.setenv("MOCK_UPSTREAM_URL", mock_url)
        monkeypatch.setenv("ROUTER_ADMIN_KEY", "admin-secret")
        policy = write_policy(tmp_path)
        settings = Settings(policy_path=policy, redis_url=redis_server, access_log=False)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client


async def test_admin_api_and_key_auth(
    gateway_app: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = gateway_app
    assert (await c.get("/admin/keys")).status_code == 401
    assert (await c.get("/admin/keys", headers={"authorization": "Bearer no"})).status_code == 401
    bad = await c.post("/admin/keys", json={"team": "a", "rpm": -1}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rpm"
    r = await c.post("/admin/keys", json={"team": "search", "models": ["auto"]}, headers=ADMIN)
    assert r.status_code == 201
    secret, key_id = r.json()["key"], r.json()["id"]
    listed = (await c.get("/admin/keys?team=search", headers=ADMIN)).json()["data"]
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]

    auth = {"authorization": f"Bearer {secret}"}
    ok = await c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG}, headers=auth)
    assert ok.status_code == 200, ok.text
    denied = await c.post(
        "/v1/chat/completions", json={"model": "mock-hosted", "messages": MSG}, headers=auth
    )
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    none = await c.post("/v1/chat/completions", json={"model": "auto", "messages": MSG})
    assert none.status_code == 401

    up = await c.patch(f"/admin/keys/{key_id}", json={"models": None, "rpm": 1}, headers=ADMIN)
    assert up.status_code == 200 and up.json()["rpm"] == 1 and up.json()["models"] == []
    assert (await c.get("/admin/keys/key_nope", headers=ADMIN)).status_code == 404
    gone = await c.delete(f"/admin/keys/{key_id}", headers=ADMIN)
    assert gone.status_code == 200 and gone.json()["revoked"] is True
    after = await c.post(
        "/v1/chat/completions", json={"model": "auto", "messages": MSG}, headers=auth
    )
    assert after.status_code == 401

    monkeypatch.delenv("ROUTER_ADMIN_KEY")
    assert (await c.get("/admin/keys", headers=ADMIN)).status_code == 403


async def test_cli_create_list_update_revoke(redis_server: str, redis_client: aredis.Redis) -> None:
    expires = (datetime.now(UTC) + timedelta(days=3650)).date().isoformat()
    out = await asyncio.to_thread(
        router_cli, "keys", "create", "--team", "ml", "--budget-usd", "3", "--window", "week",
        "--rpm", "60", "--models", "auto,mock-local", "--expires", expires, "--json",
        redis_url=redis_server,
    )  # fmt: skip
    created = json.loads(out.stdout)
    assert set(created) == {"key", "id"} and created["key"].startswith("sk-")
    listed = json.loads(
        (
            await asyncio.to_thread(router_cli, "keys", "list", "--json", redis_url=redis_server)
        ).stdout
    )
    assert listed[0]["id"] == created["id"] and listed[0]["budget_usd"] == 3.0
    assert listed[0]["models"] == ["auto", "mock-local"] and listed[0]["window"] == "week"
    await asyncio.to_thread(
        router_cli, "keys", "update", created["id"], "--budget-usd", "none", "--tpm", "1000",
        redis_url=redis_server,
    )  # fmt: skip
    await asyncio.to_thread(router_cli, "keys", "revoke", created["id"], redis_url=redis_server)
    key = await RedisKeyStore(redis_client).get(created["id"])
    assert (key.budget_usd, key.tpm, key.revoked) == (None, 1000, True)


async def test_known_keys_survive_a_redis_outage(tmp_path: Path) -> None:
    from router.errors import ServiceUnavailable
    from router.redis.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "r", transport="tcp", appendfsync="no")
    await server.astart()
    client = aredis.Redis.from_url(server.url, decode_responses=True, socket_timeout=1)
    try:
        store = RedisKeyStore(client, cache_ttl_s=0.05)
        secret, key = await store.create("search")
        assert await store.lookup(secret) is not None
        await server.astop()
        await asyncio.sleep(0.1)  # the cache entry is stale now
        p = await store.lookup(secret)
        assert p is not None and p.key_id == key.id
        with pytest.raises(ServiceUnavailable):
            await store.lookup("sk-unknown")
    finally:
        await client.aclose()
        await server.astop()
