"""The pipeline's cache stages end to end on a real Redis: miss, store, replay (JSON and SSE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis.asyncio as aredis

from router.cache.service import ResponseCache
from router.cache.stage import CacheStage, cache_headers, hit_completion, hit_decision, hit_stream
from router.context import RequestContext
from router.policy.load import load_policy
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.route.decision import plan_request
from tests.unit.core.policy_text import write_policy

pytestmark = pytest.mark.integration
SETTINGS = CacheSettings()


def req(text: str = "What is the capital of France?", **kw: Any) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(kw)
    return ChatRequest.model_validate(body)


def upstream_chunks(text: str) -> list[Chunk]:
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    out = [Chunk({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})]
    for word in text.split(" "):
        delta = {"content": word + " "}
        out.append(Chunk({**base, "choices": [{"index": 0, "delta": delta}]}))
    out.append(Chunk({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    usage = {"prompt_tokens": 8, "completion_tokens": 4, "total_tokens": 12}
    out.append(Chunk({**base, "choices": [], "usage": usage}, usage=Usage(8, 4)))
    return out


async def test_stream_miss_then_json_and_sse_hits(
    redis_client: aredis.Redis, tmp_path: Path
) -> None:
    loaded = load_policy(write_policy(tmp_path), env={})
    cache = ResponseCache(redis_client)
    emb = np.ones(384, np.float32) / np.sqrt(384)

    first = CacheStage.begin(cache, req(stream=True), "acme", SETTINGS, {})
    assert first is not None
    assert await first.exact() is None and await first.semantic(emb) is None
    assert first.header == {"x-router-cache": "miss"}
    recorder = first.recorder("small", emb)
    for chunk in upstream_chunks("Paris is the capital."):
        recorder.add(chunk)
    assert recorder.finish()
    await cache.drain()

    again = CacheStage.begin(cache, req(), "acme", SETTINGS, {})
    assert again is not None
    hit = await again.exact()
    assert hit is not None and again.status == "hit-exact"
    completion = hit_completion(hit)
    assert completion.body["choices"][0]["message"]["content"].strip() == "Paris is the capital."
    assert completion.usage == Usage(8, 4) and completion.model == "small"

    para = CacheStage.begin(cache, req("Which city is the capital of France?"), "acme", SETTINGS)
    assert para is not None
    assert await para.exact() is None
    sem = await para.semantic(emb)
    assert sem is not None and para.status == "hit-semantic"
    plan = plan_request(loaded.policy, req(), RequestContext(request_id="r"))
    decision = hit_decision(loaded.policy, loaded.hash, plan, sem)
    assert decision.target.name == "small" and "hit-semantic" in decision.reason
    assert decision.strongest is not None
    events = [e async for e in hit_stream(sem, include_usage=True)]
    assert events[-1] == b"data: [DONE]\n\n"
    last = orjson.loads(events[-2].removeprefix(b"data: "))
    assert last["usage"]["total_tokens"] == 12

    other = CacheStage.begin(cache, req(), "globex", SETTINGS)
    assert other is not None
    assert await other.exact() is None and await other.semantic(emb) is None


async def test_cut_stream_and_no_store_are_not_cached(redis_client: aredis.Redis) -> None:
    cache = ResponseCache(redis_client)
    stage = CacheStage.begin(cache, req(stream=True), "a", SETTINGS)
    assert stage is not None
    recorder = stage.recorder("small", None)
    for chunk in upstream_chunks("Paris is the capital.")[:3]:
        recorder.add(chunk)
    assert not recorder.finish()
    headers = cache_headers({"cache-control": "no-store", "authorization": "x"})
    assert headers == {"cache-control": "no-store"}
    no_store = CacheStage.begin(cache, req(), "a", SETTINGS, headers)
    assert no_store is not None
    no_store.store(Completion({"choices": []}, None, "small"), None)
    await cache.drain()
    assert await redis_client.dbsize() == 0
    assert CacheStage.begin(None, req(), "a", SETTINGS) is None
