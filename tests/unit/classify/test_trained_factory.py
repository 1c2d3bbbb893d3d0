"""TrainedClassifier end to end on a tiny encoder, and the factory's heuristic fallback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import structlog
import structlog.testing

from router.classify.encoder import MODELS_DIR_ENV, Encoder
from router.classify.factory import FallbackClassifier, build_classifier
from router.classify.features import FEATURE_NAMES
from router.classify.head import LinearHead
from router.classify.heuristic import HeuristicClassifier
from router.classify.trained import Scorer, TrainedClassifier, prompt_from_request
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest


def _head(dim: int, seed: int = 0) -> LinearHead:
    rng = np.random.default_rng(seed)
    k = dim + len(FEATURE_NAMES)
    return LinearHead(
        np.zeros(k), np.ones(k), rng.normal(size=k), 0.0, 1.0, 0.0, FEATURE_NAMES, dim
    )


def _req(text: str, history: list[dict[str, str]] | None = None) -> ChatRequest:
    msgs = [*(history or []), {"role": "user", "content": text}]
    return ChatRequest.model_validate({"model": "auto", "messages": msgs})


@pytest.fixture
def scorer(tiny_encoder: Encoder) -> Scorer:
    return Scorer(tiny_encoder, _head(32), "tiny@test")


async def test_classify_returns_score_and_embedding(scorer: Scorer) -> None:
    clf = TrainedClassifier(scorer, max_batch=8, max_wait_s=0.001)
    try:
        c = await clf.classify(_req("write python code to sum 1 2 3"))
    finally:
        await clf.aclose()
    assert 0.0 <= c.score <= 1.0
    assert c.source == "tiny@test"
    assert c.embedding is not None and c.embedding.shape == (32,)
    assert c.latency_s > 0
    direct = scorer.score_prompts([prompt_from_request(_req("write python code to sum 1 2 3"))])
    assert c.score == pytest.approx(direct[0].score, abs=1e-6)
    assert direct[0].embedding is not None
    np.testing.assert_allclose(c.embedding, direct[0].embedding, atol=1e-6)


async def test_concurrent_requests_are_batched_with_the_same_scores(scorer: Scorer) -> None:
    texts = ["hi", "prove the theorem", "explain why step by step", "thanks", "x = 1 + 2"] * 4
    clf = TrainedClassifier(scorer, max_batch=8, max_wait_s=0.01)
    try:
        got = await asyncio.gather(*(clf.classify(_req(t)) for t in texts))
        largest = clf.batcher.stats.largest
    finally:
        await clf.aclose()
    want = scorer.score_prompts([prompt_from_request(_req(t)) for t in texts])
    assert [round(c.score, 5) for c in got] == [round(w.score, 5) for w in want]
    assert largest > 1


async def test_chat_context_is_part_of_the_input(scorer: Scorer) -> None:
    plain = scorer.score_prompts([prompt_from_request(_req("make it faster"))])[0]
    history = [
        {"role": "user", "content": "write code"},
        {"role": "assistant", "content": "def f ( x ) : return x"},
    ]
    chat = _req("make it faster", history)
    with_ctx = scorer.score_prompts([prompt_from_request(chat)])[0]
    assert plain.embedding is not None and with_ctx.embedding is not None
    assert not np.allclose(plain.embedding, with_ctx.embedding)


async def test_a_prompt_cut_to_the_budget_gives_the_cache_no_embedding(scorer: Scorer) -> None:
    # Head and tail of a longer turn embed the same whatever the middle says: the semantic
    # cache must not match on that partial view, so it gets no embedding (the score stays).
    budget = scorer.encoder.max_tokens
    short = "hello " * 3
    long = "x " * (budget * 3)
    clf = TrainedClassifier(scorer, max_batch=8, max_wait_s=0.0)
    try:
        got_short, got_long = await clf.classify(_req(short)), await clf.classify(_req(long))
    finally:
        await clf.aclose()
    assert got_short.embedding is not None
    assert got_long.embedding is None and 0.0 <= got_long.score <= 1.0
    scored = scorer.score_prompts([prompt_from_request(_req(t)) for t in (short, long)])
    assert [s.whole for s in scored] == [True, False]


def test_settings_default_to_trained() -> None:
    s = ClassifierSettings()
    assert s.kind == "trained"
    with pytest.raises(ValueError):
        ClassifierSettings.model_validate({"kind": "trained", "bogus": 1})


def test_factory_heuristic_kind() -> None:
    assert isinstance(build_classifier(ClassifierSettings(kind="heuristic")), HeuristicClassifier)


async def test_factory_falls_back_when_the_model_is_missing(tmp_path: Path) -> None:
    with structlog.testing.capture_logs() as logged:
        clf = build_classifier(ClassifierSettings(model_dir=str(tmp_path / "nope"), device="cpu"))
    assert isinstance(clf, FallbackClassifier)
    assert "nope" in clf.reason or "No such file" in clf.reason
    assert any("heuristic" in str(r) for r in logged)
    c = await clf.classify(_req("hello"))
    assert c.source == "heuristic-fallback" and 0.0 <= c.score <= 1.0
    await clf.aclose()


async def test_factory_loads_a_trained_model(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tiny encoder's static table goes to a private models directory, not the user's
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    _head(32).save(tmp_path)
    settings = ClassifierSettings(
        model_dir=str(tmp_path), encoder_dir=str(tiny_bert_dir), device="cpu", max_tokens=16
    )
    clf = build_classifier(settings)
    assert isinstance(clf, TrainedClassifier)
    try:
        c = await clf.classify(_req("hello"))
    finally:
        await clf.aclose()
    assert c.embedding is not None and 0.0 <= c.score <= 1.0
    assert clf.static is not None and list((tmp_path / "models").glob("*-static-*.npy"))
