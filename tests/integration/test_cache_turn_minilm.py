"""A 150-token prompt through the real classifier and the cache stage on a real Redis 8: its
paraphrase hits through the whole-turn embedding, its near misses do not (slow: loads MiniLM)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aredis

from router.cache.service import ResponseCache
from router.cache.stage import CacheStage
from router.classify.factory import build_classifier
from router.classify.inputs import PromptText
from router.classify.trained import TrainedClassifier
from router.policy.sections.cache import CacheSettings
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PROMPT = (
    "A school is organising a trip to the science museum. There are 4 classes going, and each "
    "class has 28 students and 2 teachers. The museum charges 12 dollars for every student and "
    "8 dollars for every adult, but a group of more than 100 people gets a 10 percent discount "
    "on the whole bill. The school also hires buses that each seat 40 people, at 150 dollars "
    "per bus. Lunch is provided by the museum at no extra cost, and the trip takes place on a "
    "Friday in the spring term. Parents have donated 500 dollars towards the trip. How much "
    "money does the school still need to pay in total for the tickets and the buses after the "
    "donation? Explain each "
    "step of the calculation clearly so that the students can follow it."
)
PARAPHRASE = "Could you help me with this?\n\n" + PROMPT + "\n\nThanks!"
NEAR_MISSES = (
    PROMPT.replace("28 students", "31 students"),  # a number
    "Question:\n" + PROMPT.replace("science museum", "history museum"),  # one word, reworded
    PROMPT.replace("does the school still", "does the school not still"),  # a negation
)


def req(text: str) -> ChatRequest:
    body: dict[str, Any] = {
        "model": "auto",
        "temperature": 0,
        "messages": [{"role": "user", "content": text}],
    }
    return ChatRequest.model_validate(body)


def completion() -> Completion:
    msg = {"role": "assistant", "content": "The school still needs to pay ..."}
    body = {"choices": [{"index": 0, "message": msg, "finish_reason": "stop"}], "model": "up"}
    return Completion(body, Usage(200, 80), "hosted")


async def lookup(
    clf: TrainedClassifier, cache: ResponseCache, text: str, store: bool = False
) -> str:
    stage = CacheStage.begin(cache, req(text), "acme", CacheSettings(), {})
    assert stage is not None and await stage.exact() is None
    classification = await clf.classify(req(text))
    assert classification.embedding is None  # past the classifier's 48-token budget
    assert stage.wants_embedding
    vector = await clf.embed_turn(req(text))
    assert vector is not None
    await stage.semantic(vector, "turn")
    if store:
        stage.store(completion(), stage.embedding)
        await cache.drain()
    return stage.status


async def test_150_token_paraphrase_hits_and_near_misses_do_not(
    redis_client: aredis.Redis,
) -> None:
    clf = build_classifier(ClassifierSettings(device="cpu"))
    assert isinstance(clf, TrainedClassifier)
    tokens = clf.scorer.encoder.token_ids([PromptText(user=PROMPT)], max_tokens=512)[1][0]
    assert 130 <= tokens <= 170
    cache = ResponseCache(redis_client)
    try:
        assert await lookup(clf, cache, PROMPT, store=True) == "miss"
        assert await lookup(clf, cache, PARAPHRASE) == "hit-semantic"
        for text in NEAR_MISSES:
            assert await lookup(clf, cache, text) == "miss", text[:60]
    finally:
        await clf.aclose()
    assert cache.stats.hits_semantic == 1 and cache.stats.guard_rejects == len(NEAR_MISSES)
