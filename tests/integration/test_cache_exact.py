"""The exact cache against a real Redis: hits, rules, headers, TTL, failures as misses."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aredis

from router.cache.replay import replay_body
from router.cache.service import ResponseCache
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage

pytestmark = [pytest.mark.integration, pytest.mark.clock]
SETTINGS = CacheSettings(semantic=False)


def req(text: str = "What is the capital of France?", **kw: Any) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(kw)
    return ChatRequest.model_validate(body)


def completion(text: str = "Paris.", finish: str = "stop") -> Completion:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "up",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9},
    }
    return Completion(body, Usage(7, 2), "hosted")


async def test_store_then_hit_exact(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    creq = cache.prepare(req(), "acme", SETTINGS)
    assert await cache.lookup_exact(creq) is None
    assert await cache.store(creq, completion())
    hit = await cache.lookup_exact(cache.prepare(req(stream=True), "acme", SETTINGS))
    assert hit is not None and hit.header == "hit-exact"
    assert replay_body(hit)["choices"][0]["message"]["content"] == "Paris."
    assert hit.entry.usage == Usage(7, 2) and hit.entry.model == "hosted"
    ttl = await redis_client.ttl(f"rc:{{acme}}:x:{creq.canonical.digest}")
    assert 0 < ttl <= SETTINGS.ttl_s
    assert cache.stats.hits_exact == 1 and cache.stats.stores == 1


async def test_no_cross_tenant_exact_hit(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    await cache.store(cache.prepare(req(), "acme", SETTINGS), completion())
    assert await cache.lookup_exact(cache.prepare(req(), "globex", SETTINGS)) is None


@pytest.mark.parametrize(
    ("request_kw", "body", "settings"),
    [
        ({"temperature": 0.7}, completion(), SETTINGS),
        ({"temperature": None}, completion(), SETTINGS),
        ({}, completion(finish="content_filter"), SETTINGS),
        ({}, Completion({"error": {"message": "rate limited"}}, None, "hosted"), SETTINGS),
        ({}, completion(), CacheSettings(exact=False, semantic=False)),
    ],
)
async def test_unsafe_things_are_not_cached(
    redis_client: aredis.Redis,
    request_kw: dict[str, Any],
    body: Completion,
    settings: CacheSettings,
) -> None:
    cache = ResponseCache(redis_client)
    creq = cache.prepare(req(**request_kw), "acme", settings)
    assert not await cache.store(creq, body)
    assert await redis_client.dbsize() == 0


async def test_nonzero_temperature_opt_in(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    hot = CacheSettings(semantic=False, cache_nonzero_temperature=True)
    assert await cache.store(cache.prepare(req(temperature=0.7), "a", hot), completion())
    assert await cache.lookup_exact(cache.prepare(req(temperature=0.7), "a", hot)) is not None
    assert await cache.lookup_exact(cache.prepare(req(temperature=0.8), "a", hot)) is None


async def test_cache_control_headers(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    no_store = cache.prepare(req(), "a", SETTINGS, {"Cache-Control": "no-store"})
    assert not await cache.store(no_store, completion())
    await cache.store(cache.prepare(req(), "a", SETTINGS), completion("first"))
    refresh = cache.prepare(req(), "a", SETTINGS, {"Cache-Control": "no-cache"})
    assert await cache.lookup_exact(refresh) is None
    assert await cache.store(refresh, completion("second"))
    hit = await cache.lookup_exact(cache.prepare(req(), "a", SETTINGS))
    assert hit is not None
    assert hit.entry.body["choices"][0]["message"]["content"] == "second"


async def test_entries_expire(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    short = CacheSettings(semantic=False, ttl_s=1)
    creq = cache.prepare(req(), "a", short)
    await cache.store(creq, completion())
    await redis_client.pexpire(f"rc:{{a}}:x:{creq.canonical.digest}", 1)
    await asyncio.sleep(0.02)
    assert await cache.lookup_exact(creq) is None


async def test_redis_failure_is_a_miss_not_an_error() -> None:
    dead = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.05)
    cache = ResponseCache(dead)
    creq = cache.prepare(req(), "a", SETTINGS)
    assert await cache.lookup_exact(creq) is None
    assert await cache.lookup_semantic(creq, [1.0, 0.0]) is None
    assert not await cache.store(creq, completion())
    assert cache.stats.errors >= 2
    await dead.aclose()


async def test_corrupt_entry_is_a_miss(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    creq = cache.prepare(req(), "a", SETTINGS)
    await redis_client.set(f"rc:{{a}}:x:{creq.canonical.digest}", "not json")
    assert await cache.lookup_exact(creq) is None
    assert cache.stats.errors == 1
