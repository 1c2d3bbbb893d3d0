"""Budget actions through the gateway: reject (429, no retry), downgrade, rate-limit headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aredis

from router.app import create_app
from router.budget.reserve import Budgets, BudgetScope
from router.keys.store import RedisKeyStore
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.settings import Settings
from router.testing.mock_config import MockConfig
from router.testing.mock_process import running_mock
from tests.integration.budget_support import cost_usd, early_in_a_minute, write_policy

pytestmark = [pytest.mark.integration, pytest.mark.clock]
MSG = [{"role": "user", "content": "hello there"}]
HOSTED = {"model": "auto", "messages": MSG, "max_tokens": 100}


@asynccontextmanager
async def gateway(
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    mock: MockConfig | None = None,
    **policy: object,
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_mock(mock) as mock_url:
        monkeypatch.setenv("MOCK_UPSTREAM_URL", mock_url)
        path = write_policy(tmp_path, hosted_upstream="mock-tokens-30", **policy)
        settings = Settings(policy_path=path, redis_url=redis_url, access_log=False)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                yield client


async def _records(redis_client: aredis.Redis, n: int) -> list[LedgerRecord]:
    ledger = Ledger(redis_client, Budgets(redis_client))
    for _ in range(100):
        got = [r async for r in ledger.read()]
        if len(got) >= n:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} ledger records")


def _auth(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}


async def test_reject_is_a_429_that_says_do_not_retry(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, key = await RedisKeyStore(redis_client).create("t", budget_usd=0.002)
    async with gateway(tmp_path, redis_server, monkeypatch) as c:
        codes = []
        for _ in range(4):
            r = await c.post("/v1/chat/completions", json=HOSTED, headers=_auth(secret))
            codes.append(r.status_code)
            if r.status_code == 429 and r.json()["error"]["code"] == "budget_busy":
                # the previous request's hold was not settled yet (the settle runs after the
                # response): honest, and retryable
                assert r.headers["x-should-retry"] == "true" and int(r.headers["retry-after"]) >= 1
            await asyncio.sleep(0.1)
        assert codes[0] == 200 and codes[-1] == 429
        err = r.json()["error"]
        assert err["type"] == "insufficient_quota" and err["code"] == "budget_exceeded"
        assert f"key {key.id}" in err["message"]
        assert r.headers["x-should-retry"] == "false"
    recs = await _records(redis_client, 4)
    assert sorted(x.status for x in recs) == sorted(codes)  # rejections too
    assert sum(x.cost_usd for x in recs) <= 0.002


async def test_downgrade_sends_the_request_to_the_local_tier(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = await RedisKeyStore(redis_client).create("t", budget_usd=0.0005)
    budgets = "  action: downgrade\n"
    async with gateway(tmp_path, redis_server, monkeypatch, budgets=budgets) as c:
        r = await c.post("/v1/chat/completions", json=HOSTED, headers=_auth(secret))
        assert r.status_code == 200, r.text
        assert r.headers["x-router-model"] == "mock-local"
        assert r.headers["x-router-budget"] == "downgraded"
        usage = r.json()["usage"]
    (rec,) = await _records(redis_client, 1)
    assert rec.model == "mock-local"
    expected = cost_usd("mock-local", usage["prompt_tokens"], usage["completion_tokens"])
    assert abs(rec.cost_usd - expected) < 1e-9


async def test_a_stream_the_upstream_cuts_is_billed_an_estimate_not_zero(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The provider bills the prompt and the tokens it generated before failing.
    secret, key = await RedisKeyStore(redis_client).create("t", budget_usd=1.0)
    cut = MockConfig(stream_cut_after=3, stream_cut_mode="error")
    async with gateway(tmp_path, redis_server, monkeypatch, mock=cut) as c:
        r = await c.post(
            "/v1/chat/completions", json={**HOSTED, "stream": True}, headers=_auth(secret)
        )
        assert '"stream_interrupted"' in r.text and r.text.endswith("data: [DONE]\n\n")
    (rec,) = await _records(redis_client, 1)
    assert rec.estimated and rec.status == 502 and rec.error == "stream_interrupted"
    assert rec.prompt_tokens > 0 and rec.completion_tokens >= 2
    assert rec.cost_usd == pytest.approx(
        cost_usd(rec.model, rec.prompt_tokens, rec.completion_tokens)
    )
    assert rec.cost_usd > 0
    scope = BudgetScope(f"k:{key.id}", "key", 1.0, key.window)
    spent, reserved = await Budgets(redis_client).spent_usd(scope)
    assert spent == pytest.approx(rec.cost_usd, abs=1e-9) and reserved == 0


async def test_rate_limit_headers_and_retry_after(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = await RedisKeyStore(redis_client).create("t", rpm=2)
    team = "  teams:\n    t: {tpm: 100000}\n"
    with early_in_a_minute():
        await _rate_limited_third(tmp_path, redis_server, monkeypatch, secret, team)


async def _rate_limited_third(
    tmp_path: Path, redis_server: str, monkeypatch: pytest.MonkeyPatch, secret: str, team: str
) -> None:
    async with gateway(tmp_path, redis_server, monkeypatch, budgets=team) as c:
        post: Callable[[], object] = lambda: c.post(  # noqa: E731
            "/v1/chat/completions", json=HOSTED, headers=_auth(secret)
        )
        first = await post()  # type: ignore[misc]
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert first.headers["x-ratelimit-limit-tokens"] == "100000"
        await post()  # type: ignore[misc]
        third = await post()  # type: ignore[misc]
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limit_requests"
        assert 1 <= int(third.headers["retry-after"]) <= 60
        assert "x-should-retry" not in third.headers


async def test_cache_hits_count_against_rpm_but_not_budget_or_tpm(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret, _ = await RedisKeyStore(redis_client).create("t", rpm=3, tpm=100_000)
    same = {**HOSTED, "temperature": 0}
    with early_in_a_minute():
        async with gateway(tmp_path, redis_server, monkeypatch) as c:
            rs = [await c.post("/v1/chat/completions", json=same, headers=_auth(secret))]
            await asyncio.sleep(0.5)  # the miss is stored in the background
            for _ in range(3):
                rs.append(await c.post("/v1/chat/completions", json=same, headers=_auth(secret)))
    assert [r.status_code for r in rs] == [200, 200, 200, 429]
    assert [r.headers.get("x-router-cache") for r in rs] == [
        "miss",
        "hit-exact",
        "hit-exact",
        "miss",
    ]
    assert rs[2].headers["x-ratelimit-remaining-requests"] == "0"
    assert rs[3].json()["error"]["code"] == "rate_limit_requests"
    recs = sorted(await _records(redis_client, 4), key=lambda x: x.ts)
    assert [(x.cache, x.status) for x in recs] == [
        ("miss", 200), ("exact", 200), ("exact", 200), ("miss", 429)
    ]  # fmt: skip
    assert sum(x.cost_usd for x in recs) == pytest.approx(recs[0].cost_usd)
    # tpm: only the miss's tokens; the hits served theirs from the cache
    used = int(rs[2].headers["x-ratelimit-limit-tokens"]) - int(
        rs[2].headers["x-ratelimit-remaining-tokens"]
    )
    assert used == recs[0].prompt_tokens + recs[0].completion_tokens


async def test_soft_limit_alert_posts_the_webhook_once(
    tmp_path: Path, redis_server: str, redis_client: aredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[dict[str, object]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        received.append(orjson.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    team = (
        "  teams:\n    t: {limit_usd: 0.01}\n  soft_limit_percent: 20\n"
        f"  webhook_url: http://127.0.0.1:{port}/hook\n"
    )
    secret, _ = await RedisKeyStore(redis_client).create("t")
    try:
        async with gateway(tmp_path, redis_server, monkeypatch, budgets=team) as c:
            for _ in range(4):  # each holds up to ~$0.0016: the second crosses 20 % of $0.01
                r = await c.post("/v1/chat/completions", json=HOSTED, headers=_auth(secret))
                assert r.status_code == 200
            for _ in range(50):
                if received:
                    break
                await asyncio.sleep(0.05)
    finally:
        server.close()
    assert len(received) == 1
    assert received[0]["event"] == "budget.soft_limit" and received[0]["scope"] == "team t"
