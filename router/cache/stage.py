"""The cache stages of the pipeline (4, 6 and 12) in a form that needs no try/except.

``router/pipeline/run.py`` uses it like this (see ``docs/caching.md``, "Wiring")::

    stage = CacheStage.begin(services.cache, req, ctx.tenant, policy.cache, ctx.cache_headers)
    hit = await stage.exact() if stage else None                     # stage 4
    ...classify only when there is no hit...
    if hit is None and stage and classification is not None:
        # a two-stage classifier: its static embedding (kind "static") and its transformer
        # check as ``confirm``; otherwise the classifier's embedding, or (stage.wants_embedding
        # and the turn is longer than the classifier's budget) a whole-turn one of kind "turn"
        hit = await stage.semantic(embedding, kind, confirm)         # stage 6
    if hit is not None:
        decision = hit_decision(policy, loaded.hash, plan, hit)
        ...JSON: hit_completion(hit); stream: hit_stream(hit, req.include_usage)...
    ...
    stage.store(completion, stage.embedding)                         # stage 12, JSON
    recorder = stage.recorder(model_name, stage.embedding)           # stage 12, streams:
    recorder.add(chunk) for every chunk; recorder.finish() only when the stream ended well

Every method is a no-op or a miss when the cache is off, Redis is down or the rules say no.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import numpy.typing as npt

from router.cache.entry import CacheHit
from router.cache.replay import StreamAssembler, replay_body, replay_sse
from router.cache.rules import HINT_HEADER, RESULT_HEADER
from router.cache.semantic import EmbeddingKind
from router.cache.service import CacheRequest, Confirm, ResponseCache
from router.policy.schema import Policy
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion
from router.route.decision import Plan, RouteDecision, decide_cached

REQUEST_HEADERS = ("cache-control", HINT_HEADER)
"""The request headers the cache reads (copy them into the request context)."""


def cache_settings(policy: Policy) -> CacheSettings:
    """The policy's ``cache:`` section, or the defaults while the schema has none."""
    found = getattr(policy, "cache", None)
    return found if isinstance(found, CacheSettings) else CacheSettings()


def cache_variant(plan: Plan) -> str:
    """What routing fixed before scoring: the model and tier a rule, an override header or the
    guard pinned the request to. Part of the cache key, so that one tenant's teams, keys and
    overrides that route the same prompt differently never share an answer."""
    if plan.pinned is None:
        return ""
    return f"{plan.pinned.name}/{plan.pinned_tier or ''}"


def cache_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The cache-relevant request headers of ``headers`` (for ``RequestContext``)."""
    return {h: headers[h] for h in REQUEST_HEADERS if h in headers}


@dataclass(slots=True)
class CacheStage:
    """One request's cache work."""

    cache: ResponseCache
    request: CacheRequest
    hit: CacheHit | None = None
    kind: EmbeddingKind = "classifier"
    """The kind of embedding the semantic lookup used; stores file the answer under it too."""
    embedding: npt.ArrayLike | None = None
    """The embedding the semantic lookup used (None before it, or without one)."""

    @classmethod
    def begin(
        cls,
        cache: ResponseCache | None,
        req: ChatRequest,
        tenant: str,
        settings: CacheSettings,
        headers: Mapping[str, str] | None = None,
        variant: str = "",
    ) -> CacheStage | None:
        """Prepare the request; None when there is no cache (no Redis)."""
        if cache is None:
            return None
        return cls(cache, cache.prepare(req, tenant, settings, headers, variant))

    @property
    def status(self) -> str:
        """The ``x-router-cache`` value so far: ``miss``, ``hit-exact`` or ``hit-semantic``."""
        return self.hit.header if self.hit is not None else "miss"

    @property
    def header(self) -> dict[str, str]:
        """``{"x-router-cache": status}``."""
        return {RESULT_HEADER: self.status}

    async def exact(self) -> CacheHit | None:
        """Stage 4: the exact lookup."""
        self.hit = await self.cache.lookup_exact(self.request)
        return self.hit

    @property
    def wants_static(self) -> bool:
        """Whether a semantic lookup or store would use a first-stage embedding of the prompt."""
        return self.hit is None and self.request.uses_semantic

    @property
    def wants_embedding(self) -> bool:
        """Whether a semantic lookup or store would use a whole-turn embedding of the prompt
        (worth an extra encoder pass when the classifier's does not cover the turn)."""
        return (
            self.hit is None and self.request.uses_semantic and self.request.settings.semantic_turns
        )

    async def semantic(
        self,
        embedding: npt.ArrayLike | None,
        kind: EmbeddingKind = "classifier",
        confirm: Confirm | None = None,
    ) -> CacheHit | None:
        """Stage 6: the semantic lookup on ``embedding`` (the first stage's static embedding
        with the transformer's ``confirm``; or the classifier's, or the whole-turn embedding of
        a longer prompt: ``kind``); later stores use the same kind."""
        self.kind, self.embedding = kind, embedding
        if self.hit is None:
            self.hit = await self.cache.lookup_semantic(self.request, embedding, kind, confirm)
        return self.hit

    def store(self, completion: Completion, embedding: npt.ArrayLike | None) -> None:
        """Stage 12 for a JSON response: store in the background if the rules allow;
        ``embedding`` is the one :meth:`semantic` looked up with."""
        if self.hit is None:
            self.cache.store_later(self.request, completion, embedding, self.kind)

    def recorder(self, model: str, embedding: npt.ArrayLike | None) -> StreamRecorder:
        """Stage 12 for a stream: feed it the chunks, then call ``finish`` on a clean end."""
        return StreamRecorder(self, model, embedding)


class StreamRecorder:
    """Collects a stream's chunks and stores the completion if, and only if, it finished."""

    def __init__(self, stage: CacheStage, model: str, embedding: npt.ArrayLike | None) -> None:
        self._stage = stage
        self._model = model
        self._embedding = embedding
        self._asm: StreamAssembler | None = StreamAssembler() if stage.request.write else None

    def add(self, chunk: Chunk) -> None:
        """One chunk as it is relayed."""
        if self._asm is not None:
            self._asm.add(chunk)

    def finish(self) -> bool:
        """The stream ended without an error: store it when it is whole; True if scheduled."""
        if self._asm is None:
            return False
        completion = self._asm.completion(self._model)
        self._asm = None
        if completion is None:
            return False
        self._stage.store(completion, self._embedding)
        return True


def hit_completion(hit: CacheHit) -> Completion:
    """The completion to answer a JSON request with (fresh ``id`` and ``created``)."""
    entry = hit.entry
    return Completion(body=replay_body(hit), usage=entry.usage, model=entry.model)


async def hit_stream(hit: CacheHit, include_usage: bool) -> AsyncIterator[bytes]:
    """The SSE body of a replayed stream, ``data: [DONE]`` included."""
    for event in replay_sse(hit, include_usage):
        yield event


def hit_decision(policy: Policy, policy_hash: str, plan: Plan, hit: CacheHit) -> RouteDecision:
    """The routing decision reported for a hit: the model that answered originally."""
    what = f"cache {hit.header}, age {hit.age_s:.0f} s"
    if hit.similarity is not None:
        what += f", similarity {hit.similarity:.3f}"
    return decide_cached(policy, policy_hash, plan, hit.entry.model, what)
