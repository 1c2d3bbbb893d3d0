"""The two-stage semantic cache on a real Redis 8: the static vector set finds candidates, the
guards and the transformer's check (a plain function here) decide, and nothing else does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import redis.asyncio as aredis

from router.cache.service import ResponseCache
from router.classify.base import Confirmation
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage
from router.redis import keys

pytestmark = [pytest.mark.integration]
SETTINGS = CacheSettings(
    similarity_threshold=0.9, static_similarity_threshold=0.5, static_candidates=2
)


def unit(seed: int, dim: int = 256) -> npt.NDArray[np.float32]:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
    return out


def near(v: npt.NDArray[np.float32], cos: float) -> npt.NDArray[np.float32]:
    o = unit(99, len(v))
    o = o - float(o @ v) * v
    o /= np.linalg.norm(o)
    out: npt.NDArray[np.float32] = (cos * v + np.sqrt(1 - cos * cos) * o).astype(np.float32)
    return out / np.linalg.norm(out)


def req(text: str) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    return ChatRequest.model_validate(body)


def completion() -> Completion:
    msg = {"role": "assistant", "content": "An answer."}
    body = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "model": "up"}
    return Completion(body, Usage(7, 2), "hosted")


class Transformer:
    """Stands in for the encoder's check: a fixed similarity per cached prompt; records calls."""

    def __init__(self, verdicts: dict[str, Confirmation | None]) -> None:
        self.verdicts = verdicts
        self.asked: list[list[str]] = []

    async def __call__(self, candidates: Sequence[str]) -> list[Confirmation | None]:
        self.asked.append(list(candidates))
        return [self.verdicts.get(c) for c in candidates]


STORED = "How do I center a div in CSS?"


async def store(cache: ResponseCache, text: str, vector: npt.NDArray[np.float32]) -> None:
    stored = cache.prepare(req(text), "acme", SETTINGS)
    assert await cache.store(stored, completion(), vector, "static")


async def test_store_goes_to_the_static_set_only(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    await store(cache, STORED, unit(1))
    scope = cache.prepare(req(STORED), "acme", SETTINGS).canonical.scope
    assert await redis_client.exists(keys.static_vector_set_key("acme", scope)) == 1
    assert await redis_client.exists(keys.static_age_index_key("acme", scope)) == 1
    assert await redis_client.exists(keys.vector_set_key("acme", scope)) == 0
    assert await redis_client.exists(keys.turn_vector_set_key("acme", scope)) == 0


async def test_the_transformer_decides_a_candidate(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(2)
    await store(cache, STORED, v)
    q = cache.prepare(req("What's the way to center a div with CSS?"), "acme", SETTINGS)
    yes = Transformer({STORED: Confirmation(0.968, "classifier")})
    hit = await cache.lookup_semantic(q, near(v, 0.86), "static", yes)
    assert hit is not None and hit.header == "hit-semantic"
    assert hit.similarity == pytest.approx(0.968)  # the transformer's, not the first stage's
    assert yes.asked == [[STORED]]
    # the same candidate, but the transformer finds it too far (0.559 < 0.90): a miss
    q2 = cache.prepare(req("How do I make a div scroll horizontally in CSS?"), "acme", SETTINGS)
    no = Transformer({STORED: Confirmation(0.559, "classifier")})
    assert await cache.lookup_semantic(q2, near(v, 0.92), "static", no) is None
    assert no.asked == [[STORED]]
    # a whole-turn verdict is held to the whole-turn threshold (0.94)
    turn = Transformer({STORED: Confirmation(0.93, "turn")})
    assert await cache.lookup_semantic(q2, near(v, 0.92), "static", turn) is None
    # not comparable (the kinds differ): a miss
    none = Transformer({})
    assert await cache.lookup_semantic(q2, near(v, 0.92), "static", none) is None
    # without a transformer to ask, a first-stage candidate is never served
    assert await cache.lookup_semantic(q, near(v, 0.99), "static") is None


async def test_guards_and_the_loose_threshold_come_before_the_transformer(
    redis_client: aredis.Redis,
) -> None:
    cache = ResponseCache(redis_client)
    v = unit(3)
    await store(cache, "Convert 5 km to miles.", v)
    asked = Transformer({"Convert 5 km to miles.": Confirmation(0.99, "classifier")})
    guarded = cache.prepare(req("Convert 8 km to miles."), "acme", SETTINGS)
    assert await cache.lookup_semantic(guarded, near(v, 0.99), "static", asked) is None
    assert cache.stats.guard_rejects == 1
    far = cache.prepare(req("Convert five km into miles please."), "acme", SETTINGS)
    assert await cache.lookup_semantic(far, near(v, 0.3), "static", asked) is None
    assert asked.asked == [] and cache.stats.confirmations == 0  # no pass for either


async def test_the_best_confirmed_candidate_wins(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    v = unit(4)
    await store(cache, "Explain recursion to a beginner.", near(v, 0.95))
    await store(cache, "Can you explain recursion for a beginner?", near(v, 0.7))
    t = Transformer(
        {
            "Explain recursion to a beginner.": Confirmation(0.91, "classifier"),
            "Can you explain recursion for a beginner?": Confirmation(0.97, "classifier"),
        }
    )
    q = cache.prepare(req("Please explain recursion to a beginner."), "acme", SETTINGS)
    hit = await cache.lookup_semantic(q, v, "static", t)
    assert hit is not None and hit.entry.prompt == "Can you explain recursion for a beginner?"
    assert len(t.asked) == 1 and len(t.asked[0]) == 2  # one transformer call for both
