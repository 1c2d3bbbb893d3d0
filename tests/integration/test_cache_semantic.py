"""The semantic cache on a real Redis 8 vector set: threshold, guards, scopes, eviction."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio as aredis

from router.cache.service import ResponseCache
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage

pytestmark = [pytest.mark.integration, pytest.mark.clock]
SETTINGS = CacheSettings(similarity_threshold=0.9)
DIM = 384


def unit(seed: int) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def near(v: npt.NDArray[np.float32], cos: float, seed: int = 99) -> npt.NDArray[np.float32]:
    """A unit vector at cosine ``cos`` from ``v``."""
    o = unit(seed)
    o = o - float(o @ v) * v
    o /= np.linalg.norm(o)
    out: npt.NDArray[np.float32] = (cos * v + np.sqrt(1 - cos * cos) * o).astype(np.float32)
    return out / np.linalg.norm(out)


def req(text: str, **kw: Any) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(kw)
    return ChatRequest.model_validate(body)


def completion(text: str = "Paris.") -> Completion:
    msg = {"role": "assistant", "content": text}
    body = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "model": "up"}
    return Completion(body, Usage(7, 2), "hosted")


Q = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


async def test_similar_prompt_hits_above_threshold(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(1)
    assert await cache.store(cache.prepare(req(Q), "acme", SETTINGS), completion(), v)
    creq = cache.prepare(req(PARAPHRASE), "acme", SETTINGS)
    assert await cache.lookup_exact(creq) is None
    hit = await cache.lookup_semantic(creq, near(v, 0.95))
    assert hit is not None and hit.header == "hit-semantic"
    assert hit.similarity is not None and 0.93 < hit.similarity < 0.97
    assert await cache.lookup_semantic(creq, near(v, 0.85)) is None


async def test_search_ef_setting(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    tuned = CacheSettings(search_ef=20)
    v = unit(5)
    await cache.store(cache.prepare(req(Q), "a", tuned), completion(), v)
    assert await cache.lookup_semantic(cache.prepare(req(PARAPHRASE), "a", tuned), v) is not None


async def test_guard_blocks_near_miss_even_at_high_similarity(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(2)
    await cache.store(cache.prepare(req("Convert 5 km to miles"), "a", SETTINGS), completion(), v)
    creq = cache.prepare(req("Convert 8 km to miles"), "a", SETTINGS)
    assert await cache.lookup_semantic(creq, near(v, 0.99)) is None
    assert cache.stats.guard_rejects == 1


async def test_zero_cross_tenant_hits(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    vectors = [unit(100 + i) for i in range(20)]
    for i, v in enumerate(vectors):
        await cache.store(cache.prepare(req(f"{Q} #{i}"), "acme", SETTINGS), completion(), v)
    for i, v in enumerate(vectors):
        other = cache.prepare(req(f"{Q} #{i}"), "globex", SETTINGS)
        assert await cache.lookup_exact(other) is None
        assert await cache.lookup_semantic(other, v) is None
        same = cache.prepare(req(f"{Q} #{i}"), "acme", SETTINGS)
        assert await cache.lookup_semantic(same, v) is not None
    assert cache.stats.hits_semantic == 20


async def test_scope_separates_routes_params_and_context(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(3)
    await cache.store(cache.prepare(req(Q), "a", SETTINGS), completion(), v)
    system = [{"role": "system", "content": "answer in French"}, {"role": "user", "content": Q}]
    for other in (
        req(PARAPHRASE, model="gpt-4o"),
        req(PARAPHRASE, max_tokens=5),
        req(PARAPHRASE, messages=system),
    ):
        assert await cache.lookup_semantic(cache.prepare(other, "a", SETTINGS), v) is None


async def test_size_cap_evicts_oldest(redis_client: aredis.Redis) -> None:
    now = [1000.0]
    cache = ResponseCache(redis_client, clock=lambda: now[0])
    capped = CacheSettings(max_entries_per_scope=3)
    vectors = [unit(200 + i) for i in range(5)]
    for i, v in enumerate(vectors):
        now[0] += 1
        await cache.store(cache.prepare(req(f"question {i}"), "a", capped), completion(), v)
    scope = cache.prepare(req("x"), "a", capped).canonical.scope
    vcard = redis_client.execute_command
    assert await vcard("VCARD", f"rc:{{a}}:vs:{scope}") == 3  # type: ignore[no-untyped-call]
    assert await redis_client.zcard(f"rc:{{a}}:vz:{scope}") == 3
    assert cache.stats.evictions == 2
    oldest = cache.prepare(req("question 0"), "a", capped)
    hit = await cache.lookup_semantic(oldest, vectors[0])
    assert hit is None or hit.entry.prompt != "question 0"
    newest = cache.prepare(req("question 4"), "a", capped)
    assert await cache.lookup_semantic(newest, vectors[4]) is not None


async def test_ttl_expires_elements_via_age_index(redis_client: aredis.Redis) -> None:
    now = [1000.0]
    cache = ResponseCache(redis_client, clock=lambda: now[0])
    short = CacheSettings(ttl_s=60)
    old = unit(300)
    await cache.store(cache.prepare(req("old question"), "a", short), completion(), old)
    now[0] += 61
    stale = cache.prepare(req("old question"), "a", short)
    assert await cache.lookup_semantic(stale, old) is None  # never served late
    await cache.drain()
    await cache.store(cache.prepare(req("new question"), "a", short), completion(), unit(301))
    scope = stale.canonical.scope
    members = await redis_client.zrange(f"rc:{{a}}:vz:{scope}", 0, -1)
    assert len(members) == 1
    assert 0 < await redis_client.ttl(f"rc:{{a}}:vs:{scope}") <= 60


async def test_controls_and_limits(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(4)
    await cache.store(cache.prepare(req(Q), "a", SETTINGS), completion(), v)
    exact_only = cache.prepare(req(PARAPHRASE), "a", SETTINGS, {"x-router-cache-mode": "exact"})
    assert await cache.lookup_semantic(exact_only, v) is None
    assert await cache.lookup_semantic(cache.prepare(req(PARAPHRASE), "a", SETTINGS), None) is None
    long_prompt = "why " * 1000
    long_req = cache.prepare(req(long_prompt), "a", SETTINGS)
    assert not long_req.read_semantic
    bad = cache.prepare(req(PARAPHRASE), "a", SETTINGS)
    assert await cache.lookup_semantic(bad, np.ones(7, np.float32)) is None  # wrong dimension
    assert cache.stats.errors == 1


async def test_one_store_writes_both_caches_and_a_refused_vector_keeps_the_exact_copy(
    redis_client: aredis.Redis,
) -> None:
    cache = ResponseCache(redis_client)
    first = cache.prepare(req(Q), "a", SETTINGS)
    assert await cache.store(first, completion(), unit(5))
    hit = await cache.lookup_exact(cache.prepare(req(Q), "a", SETTINGS))
    assert hit is not None and hit.entry.body["choices"][0]["message"]["content"] == "Paris."
    digest = first.canonical.digest
    assert 0 < await redis_client.ttl(f"rc:{{a}}:x:{digest}") <= SETTINGS.ttl_s
    # A vector of another width: the set refuses it, the store fails as a whole (counted, not
    # raised), but the exact cache already has the answer.
    other = cache.prepare(req("What is the capital of Spain?"), "a", SETTINGS)
    assert not await cache.store(other, completion("Madrid."), np.ones(7, np.float32))
    assert cache.stats.errors == 1
    hit = await cache.lookup_exact(
        cache.prepare(req("What is the capital of Spain?"), "a", SETTINGS)
    )
    assert hit is not None and hit.entry.body["choices"][0]["message"]["content"] == "Madrid."
    # Exact off: only the vector set gets it.
    semantic_only = SETTINGS.model_copy(update={"exact": False})
    third = cache.prepare(req("What is the capital of Italy?"), "a", semantic_only)
    assert await cache.store(third, completion("Rome."), unit(6))
    assert not await redis_client.exists(f"rc:{{a}}:x:{third.canonical.digest}")
