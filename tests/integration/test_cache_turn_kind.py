"""The two kinds of semantic-cache embedding on a real Redis 8: never compared with each other,
each with its own vector set and threshold."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio as aredis

from router.cache.service import ResponseCache
from router.cache.stage import CacheStage
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage
from router.redis import keys

pytestmark = [pytest.mark.integration, pytest.mark.clock]
SETTINGS = CacheSettings(similarity_threshold=0.9, turn_similarity_threshold=0.94)
PROMPT = "Long question " * 60


def unit(seed: int) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
    return out


def near(v: npt.NDArray[np.float32], cos: float) -> npt.NDArray[np.float32]:
    o = unit(99)
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


def completion() -> Completion:
    msg = {"role": "assistant", "content": "An answer."}
    body = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "model": "up"}
    return Completion(body, Usage(7, 2), "hosted")


async def test_kinds_live_in_separate_sets_and_never_match(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(1)
    stored = cache.prepare(req(PROMPT), "acme", SETTINGS)
    assert await cache.store(stored, completion(), v, "turn")
    scope = stored.canonical.scope
    assert await redis_client.exists(keys.turn_vector_set_key("acme", scope)) == 1
    assert await redis_client.exists(keys.turn_age_index_key("acme", scope)) == 1
    assert await redis_client.exists(keys.vector_set_key("acme", scope)) == 0

    later = cache.prepare(req(PROMPT + "?"), "acme", SETTINGS)
    # the very same vector, asked as the other kind: a miss
    assert await cache.lookup_semantic(later, v, "classifier") is None
    hit = await cache.lookup_semantic(later, v, "turn")
    assert hit is not None and hit.header == "hit-semantic"

    other = cache.prepare(req("Short question?"), "acme", SETTINGS)
    assert await cache.store(other, completion(), unit(2), "classifier")
    assert await cache.lookup_semantic(other, unit(2), "turn") is None


async def test_turn_kind_has_its_own_threshold(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(3)
    await cache.store(cache.prepare(req(PROMPT), "a", SETTINGS), completion(), v, "turn")
    await cache.store(cache.prepare(req("Short one?"), "a", SETTINGS), completion(), v)
    creq = cache.prepare(req(PROMPT + "!"), "a", SETTINGS)
    assert await cache.lookup_semantic(creq, near(v, 0.92), "turn") is None  # < 0.94
    assert await cache.lookup_semantic(creq, near(v, 0.96), "turn") is not None
    short = cache.prepare(req("Short one!"), "a", SETTINGS)
    assert await cache.lookup_semantic(short, near(v, 0.92), "classifier") is not None


async def test_stage_stores_under_the_kind_it_looked_up_with(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(4)
    first = CacheStage.begin(cache, req(PROMPT), "t", SETTINGS, {})
    assert first is not None and first.wants_embedding
    assert await first.exact() is None and await first.semantic(v, "turn") is None
    first.store(completion(), first.embedding)
    await cache.drain()
    scope = first.request.canonical.scope
    assert await redis_client.exists(keys.turn_vector_set_key("t", scope)) == 1
    again = CacheStage.begin(cache, req(PROMPT + "?"), "t", SETTINGS, {})
    assert again is not None and await again.semantic(v, "turn") is not None
    off = CacheStage.begin(cache, req(PROMPT), "t", SETTINGS, {"x-router-cache-mode": "off"})
    assert off is not None and not off.wants_embedding  # no extra encoder pass for nothing
    no_turns = CacheSettings(semantic_turns=False)
    exact_only = CacheStage.begin(cache, req(PROMPT), "t", no_turns, {})
    assert exact_only is not None and not exact_only.wants_embedding
