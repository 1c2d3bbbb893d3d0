"""The semantic cache's whole-turn embedding on a tiny encoder: what it reads, where it stops,
and that the classifier's score never depends on it."""

from __future__ import annotations

import numpy as np
import pytest

from router.classify.base import TurnEmbedder
from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES
from router.classify.head import LinearHead
from router.classify.inputs import PromptText
from router.classify.trained import Scorer, TrainedClassifier
from router.protocol.chat_request import ChatRequest

LONG = " ".join(["explain why the sum of two odd numbers is even step by step"] * 2)
"""About 54 tokens of the tiny vocabulary: past the tiny encoder's 24-token budget."""


def _req(text: str, history: list[dict[str, str]] | None = None) -> ChatRequest:
    msgs = [*(history or []), {"role": "user", "content": text}]
    return ChatRequest.model_validate({"model": "auto", "messages": msgs})


def _head(dim: int) -> LinearHead:
    rng = np.random.default_rng(3)
    k = dim + len(FEATURE_NAMES)
    return LinearHead(
        np.zeros(k), np.ones(k), rng.normal(size=k), 0.0, 1.0, 0.0, FEATURE_NAMES, dim
    )


def test_encode_turns_embeds_whole_turns_alone_and_refuses_longer_ones(
    tiny_encoder: Encoder,
) -> None:
    short, cut = tiny_encoder.encode_turns(["prove the theorem", LONG * 3], max_tokens=64)
    assert short is not None and cut is None  # past the cap: never embedded head + tail
    assert short.shape == (32,) and abs(float(np.linalg.norm(short)) - 1.0) < 1e-5
    (whole,) = tiny_encoder.encode_turns([LONG], max_tokens=64)
    assert whole is not None
    # the same as the encoder's own pass over the turn alone at that budget
    direct = tiny_encoder.encode([PromptText(user=LONG)], max_tokens=64).embeddings[0]
    np.testing.assert_allclose(whole, direct, atol=1e-6)
    # ...and not the classifier's 24-token pass, which cut the turn to its head and tail
    budgeted = tiny_encoder.encode([PromptText(user=LONG)]).embeddings[0]
    assert float(whole @ budgeted) < 0.9999
    assert tiny_encoder.max_tokens == 24  # the override is per call


def test_token_ids_override_keeps_the_layout(tiny_encoder: Encoder) -> None:
    seqs, lengths = tiny_encoder.token_ids([PromptText(user=LONG)], max_tokens=64)
    assert len(seqs[0]) == lengths[0] + 2 <= 64
    seqs24, _ = tiny_encoder.token_ids([PromptText(user=LONG)])
    assert len(seqs24[0]) == 24


async def test_embed_turn_runs_beside_classify_without_touching_the_score(
    tiny_encoder: Encoder,
) -> None:
    clf = TrainedClassifier(Scorer(tiny_encoder, _head(32), "tiny@test"), turn_max_tokens=64)
    assert isinstance(clf, TurnEmbedder)
    history = [{"role": "system", "content": "you are a careful tutor"}]
    try:
        before = await clf.classify(_req(LONG, history))
        turn = await clf.embed_turn(_req(LONG, history))
        after = await clf.classify(_req(LONG, history))
        short = await clf.classify(_req("prove it"))
        too_long = await clf.embed_turn(_req(LONG * 3))
    finally:
        await clf.aclose()
    assert before.embedding is None  # longer than the classifier's budget
    assert before.score == after.score
    assert turn is not None and too_long is None
    # the turn alone: the system prompt is part of the cache scope, not of this vector
    (alone,) = tiny_encoder.encode_turns([LONG], max_tokens=64)
    assert alone is not None
    np.testing.assert_allclose(turn, alone, atol=1e-6)
    assert short.embedding is not None  # a short turn keeps the classifier's own pass


@pytest.mark.parametrize("text", ["", "  "])
def test_empty_turns_get_no_vector(tiny_encoder: Encoder, text: str) -> None:
    assert tiny_encoder.encode_turns([text], max_tokens=64) == [None]
