"""A head that does not read the embedding is scored without the encoder, with the same bits;
and the two-stage cache's transformer check embeds both sides like the single-stage cache."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES, prompt_features
from router.classify.head import LinearHead
from router.classify.inputs import PromptText
from router.classify.trained import Scorer, TrainedClassifier, prompt_from_request
from router.protocol.chat_request import ChatRequest

LONG = " ".join(["explain why the sum of two odd numbers is even step by step"] * 2)
PROMPTS = [
    PromptText("hi"),
    PromptText("write python code to sum 1 2 3"),
    PromptText("make it faster", context="write code\ndef f ( x ) : return x", turns=3),
    PromptText(LONG),
    PromptText(LONG * 20),
    PromptText(""),
]


def _head(dim: int, embedding_weight: float) -> LinearHead:
    """A length-led head like the shipped one; ``embedding_weight`` on every embedding column."""
    rng = np.random.default_rng(5)
    k = dim + len(FEATURE_NAMES)
    weights = np.zeros(k)
    weights[:dim] = embedding_weight
    weights[dim:] = rng.normal(size=len(FEATURE_NAMES))
    mean, scale = rng.normal(size=k), rng.uniform(0.5, 2.0, size=k)
    return LinearHead(mean, scale, weights, 0.1, 1.3, -0.2, FEATURE_NAMES, dim)


class RefusingBackend:
    """A backend that fails if it is ever asked to run."""

    name = "refusing"

    def embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        raise AssertionError("the encoder ran")


def _req(text: str) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": text}]}
    )


def test_the_head_s_weights_decide_whether_the_encoder_runs(tiny_encoder: Encoder) -> None:
    assert not Scorer(tiny_encoder, _head(32, 0.0), "t").reads_embedding
    assert Scorer(tiny_encoder, _head(32, 1e-9), "t").reads_embedding


def test_scores_without_the_encoder_are_bit_identical(tiny_encoder: Encoder) -> None:
    scorer = Scorer(tiny_encoder, _head(32, 0.0), "t")
    fast = scorer.score_prompts(PROMPTS)
    full = scorer.score_prompts(PROMPTS, encode=True)  # the encoder's pass, as before
    assert [s.score for s in fast] == [s.score for s in full]  # exact, not approximately
    assert [s.whole for s in fast] == [s.whole for s in full]
    assert {s.whole for s in fast} == {True, False}  # both kinds of prompt are covered
    assert all(s.embedding is None for s in fast) and all(s.embedding is not None for s in full)
    # one at a time too (the gateway scores a lone prompt inline)
    assert [scorer.score_prompts([p])[0].score for p in PROMPTS] == [s.score for s in fast]


def test_no_encoder_pass_at_all(tiny_encoder: Encoder) -> None:
    refusing = Encoder(tiny_encoder._tok, RefusingBackend(), max_tokens=24)
    scorer = Scorer(refusing, _head(32, 0.0), "t")
    want = Scorer(tiny_encoder, _head(32, 0.0), "t").score_prompts(PROMPTS, encode=True)
    assert [s.score for s in scorer.score_prompts(PROMPTS)] == [s.score for s in want]
    with pytest.raises(AssertionError, match="encoder ran"):
        Scorer(refusing, _head(32, 0.5), "t").score_prompts(PROMPTS)


async def test_classify_inline_matches_the_scorer(tiny_encoder: Encoder) -> None:
    scorer = Scorer(tiny_encoder, _head(32, 0.0), "t")
    clf = TrainedClassifier(scorer, max_batch=4, max_wait_s=0.0)
    try:
        for text in ("hi", "prove the theorem", LONG * 80):  # the last goes to the thread
            c = await clf.classify(_req(text))
            (want,) = scorer.score_prompts([prompt_from_request(_req(text))], encode=True)
            assert c.score == want.score and c.embedding is None
    finally:
        await clf.aclose()


async def test_confirm_embeds_both_sides_as_the_single_stage_cache(tiny_encoder: Encoder) -> None:
    scorer = Scorer(tiny_encoder, _head(32, 0.0), "t")
    clf = TrainedClassifier(scorer, max_batch=4, max_wait_s=0.0, turn_max_tokens=64)
    try:
        q = "prove the theorem step by step"
        same, other, long = await clf.confirm(_req(q), [q, "write python code", LONG])
        assert same is not None and same.kind == "classifier"
        assert same.cosine == pytest.approx(1.0, abs=1e-5)
        emb = tiny_encoder.encode([PromptText(q)]).embeddings[0]
        want = tiny_encoder.encode([PromptText("write python code")]).embeddings[0]
        assert other is not None and other.cosine == pytest.approx(float(emb @ want), abs=1e-5)
        assert long is None  # a turn past the classifier's budget was never in that vector set
        # a long query: both sides get the whole-turn pass, kind "turn"
        (turn,) = await clf.confirm(_req(LONG), [LONG + " please"])
        assert turn is not None and turn.kind == "turn" and turn.cosine > 0.9
        assert await clf.confirm(_req(LONG), [LONG], turns=False) == [None]
    finally:
        await clf.aclose()


async def test_classify_shares_its_tokenizer_pass_with_the_first_stage(
    tiny_encoder: Encoder,
) -> None:
    from router.classify.static import StaticEmbedder, distill

    scorer = Scorer(tiny_encoder, _head(32, 0.0), "t")
    static = StaticEmbedder(tiny_encoder, distill(tiny_encoder))
    clf = TrainedClassifier(scorer, max_batch=4, max_wait_s=0.0, static=static)
    try:
        for text in ("hi", "prove the theorem step by step", LONG * 3):
            c = await clf.classify(_req(text))
            (want,) = scorer.score_prompts([prompt_from_request(_req(text))], encode=True)
            assert c.score == want.score  # the shared pass changes no score
            own = clf.embed_static(_req(text))
            if len(text) <= 12 * tiny_encoder.max_tokens:
                assert c.static_embedding is not None and own is not None
                np.testing.assert_array_equal(c.static_embedding, own)
            else:  # longer than the classifier ever tokenizes: the cache embeds it itself
                assert c.static_embedding is None and own is not None
    finally:
        await clf.aclose()


class RefusingPattern:
    """A pattern that fails if it is ever asked to scan."""

    def findall(self, text: str) -> list[str]:
        raise AssertionError("a pattern the head does not weigh ran")


def _sparse_head(dim: int, columns: tuple[str, ...]) -> LinearHead:
    """``_head`` with weight only on the features named in ``columns``."""
    head = _head(dim, 0.0)
    weights = np.zeros_like(head.weights)
    for name in columns:
        i = dim + FEATURE_NAMES.index(name)
        weights[i] = head.weights[i]
    return LinearHead(head.mean, head.scale, weights, 0.1, 1.3, -0.2, FEATURE_NAMES, dim)


def _reference(head: LinearHead, prompts: list[PromptText], tokens: list[int]) -> list[float]:
    """The score from every column, as the head computed it before it skipped zero weights."""
    feats = np.stack([prompt_features(p, n) for p, n in zip(prompts, tokens, strict=True)])
    emb = np.zeros((len(prompts), head.embedding_dim), np.float32)
    raw = head.design(emb, feats) @ head.weights + head.bias
    return [
        float(v) for v in 1.0 / (1.0 + np.exp(-np.clip(head.platt_a * raw + head.platt_b, -40, 40)))
    ]


def test_only_the_features_a_head_weighs_are_computed(
    tiny_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = tiny_encoder.user_tokens(PROMPTS)
    length_led = _sparse_head(32, ("log_tokens",))  # the shipped head's shape
    assert length_led.active_features == (0,)
    want = _reference(length_led, PROMPTS, tokens)
    two = _sparse_head(32, ("log_tokens", "digit_share"))
    want_two = _reference(two, PROMPTS, tokens)
    for name in ("MATH", "STEPS", "CONSTRAINTS", "CODE_WORDS", "CODE_LINE", "CODE_FENCE"):
        monkeypatch.setattr(f"router.classify.features.{name}", RefusingPattern())
    # exact: the skipped columns added ±0 to the product
    assert [s.score for s in Scorer(tiny_encoder, length_led, "t").score_prompts(PROMPTS)] == want
    got_two = [s.score for s in Scorer(tiny_encoder, two, "t").score_prompts(PROMPTS)]
    assert got_two == pytest.approx(want_two, rel=1e-12, abs=1e-15)
    with pytest.raises(AssertionError, match="does not weigh"):
        Scorer(tiny_encoder, _sparse_head(32, ("math",)), "t").score_prompts(PROMPTS)


def test_skipped_columns_are_zero_and_the_rest_unchanged() -> None:
    for p in PROMPTS:
        full = prompt_features(p, 17)
        part = prompt_features(p, 17, only=(0, 4, 8))
        assert part[[0, 4, 8]].tolist() == full[[0, 4, 8]].tolist()
        assert not np.delete(part, [0, 4, 8]).any()
