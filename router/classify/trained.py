"""The trained classifier: MiniLM embedding + cheap features → linear head → score.

When the head reads the embedding (any non-zero weight on its columns), one encoder pass per
request (micro-batched in a worker thread) yields the score. A head that does not (the shipped
length-only head) is scored from the tokenizer and the cheap features alone, on the event loop,
with bit-identical scores: the encoder does not run for routing at all.

The semantic cache gets two things from here (:mod:`router.cache.service`): a first-stage
static embedding of the last user turn (:mod:`router.classify.static`, microseconds), and
:meth:`TrainedClassifier.confirm`, the transformer's verdict on the few cached prompts that the
first stage found near.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.base import Classification, Confirmation
from router.classify.batcher import MicroBatcher
from router.classify.encoder import TURN_MAX_TOKENS, Encoder, default_model_dir, models_dir
from router.classify.features import prompt_features
from router.classify.head import LinearHead, read_metadata
from router.classify.inputs import CHARS_PER_TOKEN_BOUND, PromptText, prompt_from_messages
from router.classify.static import StaticEmbedder, ensure_table
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest

DEFAULT_MAX_TOKENS = 48
INLINE_CHARS = 4000
"""A prompt (user turn plus context) up to this many characters is scored on the event loop
when the head needs no encoder pass (tokenizer and features: about 0.1 ms); a longer one goes
to the worker thread so that its regex scan never stalls the loop."""


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
    embedding: npt.NDArray[np.float32] | None
    """The encoder's embedding; None when the head does not read it (the encoder did not run)."""
    whole: bool = True
    """Whether the encoder saw the whole user turn (it was not cut to the token budget)."""


class Scorer:
    """Blocking scoring of prompt batches: encoder → features → head."""

    def __init__(self, encoder: Encoder, head: LinearHead, source: str) -> None:
        """Pair an encoder with a head trained on its embeddings."""
        self.encoder = encoder
        self.head = head
        self.source = source
        # Decided by the head's weights, not by its name: a head that gives every embedding
        # column weight 0 adds (x - mean) / scale * 0 = ±0 for each of them whatever x is, so
        # scoring it on zeros instead of the embedding gives the same bits, without the pass.
        self.reads_embedding = bool(np.any(head.weights[: head.embedding_dim] != 0))
        # Likewise for the features: only those the head weighs are computed (the rest stay 0).
        self.features_read = head.active_features
        self._zeros = np.zeros(head.embedding_dim, dtype=np.float32)

    def fits(self, prompt: PromptText, user_tokens: int) -> bool:
        """Whether the encoder's budget holds the whole user turn (with its context, if any)."""
        enc_budget = self.encoder.max_tokens - 2  # [CLS] and [SEP]
        ctx_budget = self.encoder.context_tokens + 1  # and the context's [SEP]
        return user_tokens <= enc_budget - (ctx_budget if prompt.context else 0)

    def score_prompts(
        self,
        prompts: Sequence[PromptText],
        encode: bool = False,
        user_tokens: Sequence[int] | None = None,
    ) -> list[Scored]:
        """Score ``prompts`` (blocking; run it off the event loop). The encoder runs when the
        head reads its embedding, or when ``encode`` asks for the embeddings anyway; otherwise
        ``user_tokens``, when given, are the prompts' token counts (no tokenizer pass)."""
        if not prompts:
            return []
        if self.reads_embedding or encode:
            enc = self.encoder.encode(prompts)
            return [
                Scored(self.head.predict_one(e, prompt_features(p, int(n), self.features_read)),
                       e, self.fits(p, int(n)))
                for p, e, n in zip(prompts, enc.embeddings, enc.user_tokens, strict=True)
            ]  # fmt: skip
        counts = self.encoder.user_tokens(prompts) if user_tokens is None else user_tokens
        # Row by row, in both branches: a matrix-vector product over a batch rounds differently
        # (last bits) from one over a lone row, and the gateway scores a lone prompt while
        # `router score` scores batches; per row, x-router-score and `router score` agree
        # exactly. The head reads no embedding here: every row gets the same zeros.
        zeros = self._zeros
        return [
            Scored(self.head.predict_one(zeros, prompt_features(p, int(n), self.features_read)),
                   None, self.fits(p, int(n)))
            for p, n in zip(prompts, counts, strict=True)
        ]  # fmt: skip

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
        static: StaticEmbedder | None = None,
    ) -> None:
        """Start the batchers' worker threads; ``turn_max_tokens`` caps :meth:`embed_turn`;
        ``static`` gives the semantic cache its first stage (:meth:`embed_static`)."""
        self.scorer = scorer
        self.turn_max_tokens = turn_max_tokens
        self.source = scorer.source
        self.static = static
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
        """Load model and encoder (blocking, about a second), the static table (distilled
        once into the models directory, about 10 s the first time) and start the worker."""
        scorer = Scorer.load(settings)
        mdir = Path(settings.encoder_dir) if settings.encoder_dir else default_model_dir()
        table = ensure_table(scorer.encoder, mdir, models_dir())
        static = StaticEmbedder.load(scorer.encoder, table)
        return cls(scorer, settings.max_batch, settings.max_wait_ms / 1000.0, static=static)

    @property
    def batcher(self) -> MicroBatcher[PromptText, Scored]:
        """The micro-batcher (for its statistics)."""
        return self._batcher

    async def classify(self, req: ChatRequest) -> Classification:
        """Score ``req``; an encoder pass runs in the batcher's thread, never on the event
        loop; a head without one scores a short prompt inline (about 0.1 ms)."""
        t0 = time.perf_counter()
        prompt = prompt_from_request(req)
        static: npt.NDArray[np.float32] | None = None
        if not self.scorer.reads_embedding and len(prompt.user) + len(prompt.context) <= (
            INLINE_CHARS
        ):
            counts: list[int] | None = None
            if self.static is not None and len(prompt.user) <= CHARS_PER_TOKEN_BOUND * (
                self.scorer.encoder.max_tokens
            ):
                # One tokenizer pass for both: a turn this short is not clipped before it is
                # counted, so its token count is the length of these ids.
                (ids,) = self.scorer.encoder.plain_ids([prompt.user])
                counts = [len(ids)]
                static = self.static.embed_ids(ids)
            out = self.scorer.score_prompts([prompt], user_tokens=counts)[0]
        else:
            out = await self._batcher.submit(prompt)
        return Classification(
            score=out.score,
            source=self.source,
            latency_s=time.perf_counter() - t0,
            # An embedding of the head and tail of a longer prompt would make two prompts that
            # differ only in the middle look identical to the semantic cache.
            embedding=out.embedding if out.whole else None,
            static_embedding=static,
        )

    async def embed_turn(self, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        """The semantic cache's embedding of the whole last user turn (no context, at most
        ``turn_max_tokens`` tokens; None for a longer turn), in a worker thread. Only worth
        calling when :meth:`classify` returned no embedding: then the turn did not fit the
        classifier's budget."""
        return await self._turns.submit(prompt_from_request(req).user)

    def embed_static(self, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        """The first-stage (static) embedding of the last user turn, on the calling thread
        (tens of microseconds); None without a static table or for a turn without tokens."""
        if self.static is None:
            return None
        return self.static.embed([prompt_from_request(req).user])[0]

    async def confirm(
        self,
        req: ChatRequest,
        candidates: Sequence[str],
        classification: Classification | None = None,
        turns: bool = True,
    ) -> list[Confirmation | None]:
        """The transformer's similarity between ``req``'s last user turn and each cached
        prompt of ``candidates`` (same scope, so same earlier turns), in a worker thread.

        Both sides are embedded exactly as the single-stage cache embedded them: with the
        classifier's pass (kind ``classifier``) when the query's turn fits its budget, with
        the whole-turn pass (kind ``turn``, only if ``turns``) when it does not. A candidate
        that would have had the other kind, or none, gets None (the kinds were never
        compared). ``classification``'s embedding, when it has one, is the query's.
        """
        if not candidates:
            return []
        prompt = prompt_from_request(req)
        known = classification.embedding if classification is not None else None
        return await asyncio.to_thread(
            self._confirm_blocking, prompt, list(candidates), known, turns
        )

    def _confirm_blocking(
        self,
        query: PromptText,
        candidates: list[str],
        known: npt.NDArray[np.float32] | None,
        turns: bool,
    ) -> list[Confirmation | None]:
        encoder = self.scorer.encoder
        (n_query,) = encoder.user_tokens([query])
        if self.scorer.fits(query, n_query):
            rows = [PromptText(c, query.context, query.turns) for c in candidates]
            enc = encoder.encode(rows if known is not None else [query, *rows])
            q = known if known is not None else enc.embeddings[0]
            skip = 0 if known is not None else 1
            return [
                Confirmation(float(q @ e), "classifier") if self.scorer.fits(p, int(n)) else None
                for p, e, n in zip(rows, enc.embeddings[skip:], enc.user_tokens[skip:], strict=True)
            ]
        if not turns:
            return [None] * len(candidates)
        vecs = encoder.encode_turns([query.user, *candidates], self.turn_max_tokens)
        qv = vecs[0]
        return [
            Confirmation(float(qv @ v), "turn") if qv is not None and v is not None else None
            for v in vecs[1:]
        ]

    async def aclose(self) -> None:
        """Stop the worker threads."""
        await self._turns.aclose()
        await self._batcher.aclose()
        self.scorer.encoder.close()
