"""Feedback through the in-process gateway on a real Redis: index, 404s, tenants, training rows."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aredis

from router.auth import Authenticator, Principal
from router.budget.reserve import Budgets
from router.errors import UpstreamError, UpstreamTimeout
from router.learning.feedback_rows import build_rows, ledger_training_data
from router.ledger.writer import Ledger
from router.observability.hub import Observability
from router.redis import keys as fk
from tests.unit.core.policy_text import POLICY, write_policy
from tests.unit.observability.harness import Harness, harness, value

pytestmark = [pytest.mark.integration, pytest.mark.clock]
STORE_PROMPTS = "observability:\n  feedback: {store_prompts: true, retention_days: 1}\n"
KEYS = {"sk-a": Principal(tenant="tenant-a", key_id="ka", team="search"),
        "sk-b": Principal(tenant="tenant-b", key_id="kb", team="ads")}  # fmt: skip


class Keys:
    """A key store double: two tenants."""

    async def lookup(self, secret: str) -> Principal | None:
        return KEYS.get(secret)


async def _wired(h: Harness, redis: aredis.Redis) -> Harness:
    budgets = Budgets(redis)
    h.services.redis = None
    h.services.budgets = budgets
    h.services.ledger = Ledger(redis, budgets)
    h.services.observability = Observability.start(redis, budgets)
    return h


@pytest.fixture
async def h(tmp_path: Path, redis_client: aredis.Redis) -> AsyncIterator[Harness]:
    async for x in harness(write_policy(tmp_path, POLICY + STORE_PROMPTS)):
        yield await _wired(x, redis_client)


async def _feedback(h: Harness, body: object, key: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await h.client.post("/v1/feedback", json=body, headers=headers)


async def test_feedback_on_a_served_request_is_stored_with_its_routing_facts(
    h: Harness, redis_client: aredis.Redis
) -> None:
    r = await h.chat()
    rid = r.headers["x-request-id"]
    fb = await _feedback(h, {"request_id": rid, "thumbs": "down", "needed_strong": True})
    assert fb.status_code == 200, fb.text
    body = fb.json()
    assert body["model"] == "small" and body["tier"] == "local"
    assert body["routing_score"] == pytest.approx(0.1) and body["needed_strong"] is True
    row = await redis_client.hgetall(fk.feedback_key("default", rid))
    assert row["thumbs"] == "down" and row["needed_strong"] == "1"
    assert row["model"] == "small" and len(row["prompt_sha256"]) == 64
    assert orjson.loads(row["messages"]) == [{"role": "user", "content": "hello"}]
    assert 0 < await redis_client.ttl(fk.feedback_key("default", rid)) <= 86400
    assert await redis_client.zscore(fk.feedback_ids_key(), f"default:{rid}") is not None
    s = await h.samples()
    assert value(s, "router_feedback_total", kind="down") == 1
    assert value(s, "router_feedback_total", kind="needed_strong") == 1


async def test_later_feedback_replaces_earlier(h: Harness, redis_client: aredis.Redis) -> None:
    rid = (await h.chat()).headers["x-request-id"]
    assert (await _feedback(h, {"request_id": rid, "score": 2, "comment": "meh"})).is_success
    assert (await _feedback(h, {"request_id": rid, "thumbs": "up"})).is_success
    row = await redis_client.hgetall(fk.feedback_key("default", rid))
    assert row["thumbs"] == "up" and row["rating"] == "" and row["comment"] == ""
    s = await h.samples()
    assert value(s, "router_feedback_total", kind="score") == 1
    assert value(s, "router_feedback_total", kind="up") == 1


async def test_unknown_and_failed_request_ids_are_404(h: Harness) -> None:
    r = await _feedback(h, {"request_id": "never-seen", "thumbs": "up"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "request_id"
    h.backend.errors = {m: [fk_timeout(m)] * 2 for m in ("small", "big", "backup")}
    failed = await h.chat()
    assert failed.status_code == 504
    r = await _feedback(h, {"request_id": failed.headers["x-request-id"], "thumbs": "up"})
    assert r.status_code == 404


def fk_timeout(model: str) -> UpstreamError:
    return UpstreamTimeout("t", model=model)


async def test_streamed_requests_can_be_rated(h: Harness) -> None:
    r = await h.chat(stream=True)
    rid = r.headers["x-request-id"]
    assert (await _feedback(h, {"request_id": rid, "thumbs": "up"})).status_code == 200


async def test_a_tenant_cannot_rate_another_tenants_request(
    tmp_path: Path, redis_client: aredis.Redis
) -> None:
    policy = POLICY.replace("auth: none", "auth: keys") + STORE_PROMPTS
    async for x in harness(write_policy(tmp_path, policy)):
        h = await _wired(x, redis_client)
        h.services.auth = Authenticator(None, Keys())
        r = await h.chat(**{})  # no key
        assert r.status_code == 401
        r = await h.post(
            {"model": "auto", "messages": [{"role": "user", "content": "q"}]},
            authorization="Bearer sk-a",
        )
        rid = r.headers["x-request-id"]
        assert (await _feedback(h, {"request_id": rid, "thumbs": "up"})).status_code == 401
        assert (await _feedback(h, {"request_id": rid, "thumbs": "up"}, "sk-b")).status_code == 404
        assert (await _feedback(h, {"request_id": rid, "thumbs": "up"}, "sk-a")).status_code == 200


async def test_without_store_prompts_only_the_hash_is_kept(
    tmp_path: Path, redis_client: aredis.Redis
) -> None:
    async for x in harness(write_policy(tmp_path)):
        h = await _wired(x, redis_client)
        rid = (await h.chat()).headers["x-request-id"]
        await _feedback(h, {"request_id": rid, "needed_strong": False})
        row = await redis_client.hgetall(fk.feedback_key("default", rid))
        assert "messages" not in row and len(row["prompt_sha256"]) == 64
        rows, stats = build_rows(
            [r async for r in h.services.observability.feedback.rows()], "weak", "strong"
        )
        assert rows == [] and stats.without_prompt == 1


async def test_feedback_disabled_by_policy_means_404(
    tmp_path: Path, redis_client: aredis.Redis
) -> None:
    policy = POLICY + "observability:\n  feedback: {enabled: false}\n"
    async for x in harness(write_policy(tmp_path, policy)):
        h = await _wired(x, redis_client)
        rid = (await h.chat()).headers["x-request-id"]
        assert (await _feedback(h, {"request_id": rid, "thumbs": "up"})).status_code == 404


async def test_train_from_ledger_builds_labelled_rows(
    h: Harness, redis_client: aredis.Redis, redis_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    labels = {"q-strong": True, "q-weak": False, "q-none": None}
    for rid, needed in labels.items():
        await h.post(
            {"model": "auto", "messages": [{"role": "user", "content": f"prompt {rid}"}]},
            **{"x-request-id": rid},
        )
        body: dict[str, object] = {"request_id": rid, "thumbs": "up"}
        if needed is not None:
            body["needed_strong"] = needed
        assert (await _feedback(h, body)).status_code == 200
    monkeypatch.setenv("REDIS_URL", redis_server)
    args = argparse.Namespace(
        data=[], from_ledger=True, out=tmp_path / "model", weak_model="W", strong_model="S"
    )
    data = await asyncio.to_thread(ledger_training_data, args)
    assert data is not None and len(data) == 1
    rows = [orjson.loads(line) for line in data[0].read_bytes().splitlines()]
    by_id = {r["id"].rsplit("/", 1)[1]: r for r in rows}
    assert set(by_id) == {"q-strong", "q-weak"}
    assert by_id["q-strong"]["label"] == 1 and by_id["q-strong"]["scores"] == {"W": 0.0, "S": 1.0}
    assert by_id["q-weak"]["label"] == 0 and by_id["q-weak"]["scores"] == {"W": 1.0, "S": 1.0}
    assert by_id["q-strong"]["prompt"] == [{"role": "user", "content": "prompt q-strong"}]
    from router.classify.dataset import load_outcomes

    outcomes = load_outcomes(data, "W", "S")  # the trainer's own reader accepts them
    assert sorted((outcomes.strong - outcomes.weak).tolist()) == [0.0, 1.0]


async def test_cache_hits_are_counted_by_outcome_without_upstream_time(
    h: Harness, redis_client: aredis.Redis
) -> None:
    from router.cache.service import ResponseCache

    h.services.cache = ResponseCache(redis_client)
    try:
        assert (await h.chat(temperature=0)).headers.get("x-router-cache") == "miss"
        for _ in range(50):  # the store is written in the background
            await asyncio.sleep(0.05)
            if await redis_client.keys("rc:*:x:*"):
                break
        r = await h.chat(temperature=0)
        assert r.headers.get("x-router-cache") == "hit-exact", r.headers
        s = await h.samples()
        hit = {"route": "auto", "model": "small", "status": "200"}
        assert value(s, "router_requests_total", cache="miss", **hit) == 1
        assert value(s, "router_requests_total", cache="exact", **hit) == 1
        assert value(s, "router_upstream_duration_seconds_count", model="small") == 1
        assert value(s, "router_request_duration_seconds_count", route="auto") == 2
    finally:
        await h.services.cache.aclose()


async def test_budget_remaining_gauge_after_settle(
    tmp_path: Path, redis_client: aredis.Redis
) -> None:
    policy = POLICY + "budgets:\n  global: {limit_usd: 10, window: month}\n"
    async for x in harness(write_policy(tmp_path, policy)):
        h = await _wired(x, redis_client)
        assert (await h.chat()).status_code == 200
        await h.services.ledger.aclose()  # type: ignore[union-attr]  # the settle is written
        gauge = h.services.observability.budget_gauge
        assert gauge is not None
        for _ in range(40):
            await asyncio.sleep(0.05)
            if gauge.refreshes:
                break
        s = await h.samples()
        remaining = value(s, "router_budget_remaining_usd", scope="global", window="month")
        assert remaining == pytest.approx(10 - 0.0002, abs=1e-9)
        assert value(s, "router_budget_limit_usd", scope="global", window="month") == 10
