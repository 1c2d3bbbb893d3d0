"""The trained classifier: MiniLM embedding + cheap features → linear head → score.

One encoder pass per request (micro-batched in a worker thread) yields both the score and the
embedding, which :class:`~router.classify.base.Classification` hands to the semantic cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.base import Classification
from router.classify.batcher import MicroBatcher
from router.classify.encoder import TURN_MAX_TOKENS, Encoder
from router.classify.features import feature_matrix
from router.classify.head import LinearHead, read_metadata
from router.classify.inputs import PromptText, prompt_from_messages
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest

DEFAULT_MAX_TOKENS = 48


def shipped_model_dir() -> Path:
    """The head trained on ``../shared/data/router`` that ships with the package."""
    return Path(__file__).resolve().parent / "model"


def prompt_from_request(req: ChatRequest, context_chars: int = 400) -> PromptText:
    """The encoder's view of a chat request (last user turn plus a short context)."""
    return prompt_from_messages([(m.role, m.text()) for m in req.messages], context_chars)


@dataclass(frozen=True, slots=True)
class Scored:
    """One prompt's score and embedding."""

    score: float
    embedding: npt.NDArray[np.float32]
    whole: bool = True
    """Whether the encoder saw the whole user turn (it was not cut to the token budget)."""


class Scorer:
    """Blocking scoring of prompt batches: encoder → features → head."""

    def __init__(self, encoder: Encoder, head: LinearHead, source: str) -> None:
        """Pair an encoder with a head trained on its embeddings."""
        self.encoder = encoder
        self.head = head
        self.source = source

    def score_prompts(self, prompts: Sequence[PromptText]) -> list[Scored]:
        """Score ``prompts`` in one encoder call (blocking; run it off the event loop)."""
        if not prompts:
            return []
        enc = self.encoder.encode(prompts)
        feats = feature_matrix(list(prompts), enc.user_tokens)
        scores = self.head.predict(enc.embeddings, feats)
        enc_budget = self.encoder.max_tokens - 2  # [CLS] and [SEP]
        ctx_budget = self.encoder.context_tokens + 1  # and the context's [SEP]
        return [
            Scored(float(s), e, int(n) <= enc_budget - (ctx_budget if p.context else 0))
            for s, e, n, p in zip(scores, enc.embeddings, enc.user_tokens, prompts, strict=True)
        ]

    @classmethod
    def load(cls, settings: ClassifierSettings) -> Scorer:
        """Load the head named by ``settings`` and the encoder it was trained with."""
        mdir = Path(settings.model_dir) if settings.model_dir else shipped_model_dir()
        head = LinearHead.load(mdir)
        meta = read_metadata(mdir)
        trained_budget = meta.get("encoder_max_tokens")
        budget = settings.max_tokens or (
            int(trained_budget) if isinstance(trained_budget, int) else DEFAULT_MAX_TOKENS
        )
        encoder = Encoder.load(
            model_dir=Path(settings.encoder_dir) if settings.encoder_dir else None,
            device=settings.device,
            runtime=settings.runtime,
            max_tokens=budget,
            context_tokens=settings.context_tokens,
            max_batch=settings.max_batch,
            threads=settings.threads,
        )
        source = str(meta.get("source") or "minilm-ridge")
        return cls(encoder, head, source)


class TrainedClassifier:
    """The :class:`~router.classify.base.Classifier` over a :class:`Scorer`, micro-batched."""

    def __init__(
        self,
        scorer: Scorer,
        max_batch: int = 32,
        max_wait_s: float = 0.001,
        turn_max_tokens: int = TURN_MAX_TOKENS,
    ) -> None:
        """Start the batchers' worker threads; ``turn_max_tokens`` caps :meth:`embed_turn`."""
        self.scorer = scorer
        self.turn_max_tokens = turn_max_tokens
        self.source = scorer.source
        self._batcher: MicroBatcher[PromptText, Scored] = MicroBatcher(
            scorer.score_prompts, max_batch=max_batch, max_wait_s=max_wait_s, name="classifier"
        )
        # The semantic cache's whole-turn pass over prompts longer than the classifier's
        # budget, in its own worker thread so that its rows never join (and never change) a
        # batch of scores. It shares the encoder's lock: while a long row runs (about 40-120
        # ms), the next batch of scores waits. The score never reads it.
        self._turns: MicroBatcher[str, npt.NDArray[np.float32] | None] = MicroBatcher(
            self._embed_turns, max_batch=max_batch, max_wait_s=max_wait_s, name="cache-embed"
        )

    def _embed_turns(self, texts: Sequence[str]) -> list[npt.NDArray[np.float32] | None]:
        return self.scorer.encoder.encode_turns(texts, self.turn_max_tokens)

    @classmethod
    def load(cls, settings: ClassifierSettings) -> TrainedClassifier:
        """Load model and encoder (blocking, about a second) and start the worker."""
        scorer = Scorer.load(settings)
        return cls(scorer, settings.max_batch, settings.max_wait_ms / 1000.0)

    @property
    def batcher(self) -> MicroBatcher[PromptText, Scored]:
        """The micro-batcher (for its statistics)."""
        return self._batcher

    async def classify(self, req: ChatRequest) -> Classification:
        """Score ``req``; the encoder runs in the batcher's thread, never on the event loop."""
        t0 = time.perf_counter()
        out = await self._batcher.submit(prompt_from_request(req))
        return Classification(
            score=out.score,
            source=self.source,
            latency_s=time.perf_counter() - t0,
            # An embedding of the head and tail of a longer prompt would make two prompts that
            # differ only in the middle look identical to the semantic cache.
            embedding=out.embedding if out.whole else None,
        )

    async def embed_turn(self, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        """The semantic cache's embedding of the whole last user turn (no context, at most
        ``turn_max_tokens`` tokens; None for a longer turn), in a worker thread. Only worth
        calling when :meth:`classify` returned no embedding: then the turn did not fit the
        classifier's budget."""
        return await self._turns.submit(prompt_from_request(req).user)

    async def aclose(self) -> None:
        """Stop the worker threads."""
        await self._turns.aclose()
        await self._batcher.aclose()
        self.scorer.encoder.close()
