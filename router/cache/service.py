"""The cache as the pipeline sees it: ``prepare``, ``lookup_exact``, ``lookup_semantic``, ``store``.

None of these raise (except ``asyncio.CancelledError``): a Redis error, a timeout, a malformed
entry or an embedding of the wrong shape is counted in :class:`CacheStats`, logged at most once
per ``log_interval_s``, and reported as a miss (or a skipped store). Each Redis operation gets
the policy's ``timeout_ms``.

Pipeline usage (stage numbers from ``docs/DESIGN``)::

    creq = cache.prepare(req, tenant, policy.cache, request.headers)       # pure, ~20 us
    hit = await cache.lookup_exact(creq)                                   # stage 4
    ...embedding = classification.embedding...                             # stage 5
    hit = hit or await cache.lookup_semantic(creq, embedding)              # stage 6
    if hit: reply with replay.replay_body(hit) / replay.replay_chunks(hit, req.include_usage)
    ...call the backend...
    cache.store_later(creq, completion, embedding)                         # stage 12
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog

from router.cache.canonical import CanonicalRequest, canonicalize
from router.cache.entry import CacheEntry, CacheHit
from router.cache.exact import ExactCache
from router.cache.guards import false_hit_reason
from router.cache.rules import Directives, request_uncacheable, response_uncacheable
from router.cache.semantic import EmbeddingKind, SemanticCache
from router.classify.base import Confirmation
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion
from router.redis.keys import exact_key
from router.redis.mux import CommandClient
from router.tasks import Tasks

Confirm = Callable[[Sequence[str]], Awaitable[list[Confirmation | None]]]
"""The transformer's check of first-stage candidates: the similarity of the request's prompt to
each cached prompt (see :meth:`router.classify.trained.TrainedClassifier.confirm`)."""
TASK_KIND = "cache"
"""The kind of the cache's background work in :class:`~router.tasks.Tasks`."""
log = structlog.get_logger(__name__)


@dataclass(slots=True)
class CacheStats:
    """Counters since start (for /metrics)."""

    hits_exact: int = 0
    hits_semantic: int = 0
    misses: int = 0
    bypassed: int = 0
    """Requests the rules or the client's headers kept away from the cache."""
    guard_rejects: int = 0
    """Semantic candidates above the threshold (the first stage's loose one, for static
    embeddings) that a false-hit guard turned into a miss."""
    confirmations: int = 0
    """Transformer checks of first-stage candidates (each embeds the prompt and candidates)."""
    stores: int = 0
    store_skips: int = 0
    evictions: int = 0
    errors: int = 0
    by_error: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """One request as the cache sees it; build it with :meth:`ResponseCache.prepare`."""

    tenant: str
    canonical: CanonicalRequest
    settings: CacheSettings
    directives: Directives
    bypass: str | None
    """Why the cache is not used for this request (None: it is)."""

    @property
    def read_exact(self) -> bool:
        """Whether an exact lookup may serve this request."""
        return self.bypass is None and self.settings.exact and self.directives.read_exact

    @property
    def read_semantic(self) -> bool:
        """Whether a semantic lookup may serve this request."""
        return (
            self.bypass is None
            and self.settings.semantic
            and self.directives.read_semantic
            and self._semantic_prompt_ok
        )

    @property
    def uses_semantic(self) -> bool:
        """Whether an embedding of the prompt would be used: to look up, or to store."""
        return (
            self.settings.semantic
            and self._semantic_prompt_ok
            and (self.read_semantic or self.write)
        )

    def threshold(self, kind: EmbeddingKind) -> float:
        """The minimum cosine similarity of a semantic hit between embeddings of ``kind``."""
        if kind == "turn":
            return self.settings.turn_similarity_threshold
        return self.settings.similarity_threshold

    @property
    def write(self) -> bool:
        """Whether the response may be stored."""
        return self.bypass is None and self.directives.write

    @property
    def _semantic_prompt_ok(self) -> bool:
        prompt = self.canonical.prompt
        return bool(prompt.strip()) and len(prompt) <= self.settings.semantic_max_chars


class ResponseCache:
    """Exact and semantic response cache on one Redis client. Never raises to the caller."""

    def __init__(
        self,
        redis: CommandClient,
        *,
        log_interval_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        tasks: Tasks | None = None,
    ) -> None:
        """``clock`` returns Unix seconds (tests move it to expire entries); ``tasks`` holds
        the background stores and evictions (the app's one owner; a private one if None)."""
        self.exact = ExactCache(redis)
        self.semantic = SemanticCache(redis)
        self.stats = CacheStats()
        self._clock = clock
        self._log_interval_s = log_interval_s
        self._last_log = -float("inf")
        self._tasks = tasks if tasks is not None else Tasks()

    # ---- request side ---------------------------------------------------------------------

    def prepare(
        self,
        req: ChatRequest,
        tenant: str,
        settings: CacheSettings,
        headers: Mapping[str, str] | None = None,
        variant: str = "",
    ) -> CacheRequest:
        """Canonicalise ``req`` for ``tenant`` and decide what the cache may do with it.

        ``variant`` separates requests that are identical but routed differently (see
        :func:`router.cache.stage.cache_variant`).
        """
        canonical = canonicalize(req, tenant, settings.namespace, variant)
        directives = Directives.from_headers(headers or {})
        bypass = request_uncacheable(req, settings, canonical.has_tool_turns)
        if bypass is None and not (directives.read_exact or directives.write):
            bypass = "client asked for no-store"
        if bypass is not None:
            self.stats.bypassed += 1
        return CacheRequest(tenant, canonical, settings, directives, bypass)

    async def lookup_exact(self, creq: CacheRequest) -> CacheHit | None:
        """The entry stored for this exact request, or None (also on any error)."""
        if not creq.read_exact:
            return None
        try:
            async with asyncio.timeout(creq.settings.timeout_ms / 1000):
                entry = await self.exact.get(creq.tenant, creq.canonical.digest)
        except Exception as exc:
            self._failed("lookup_exact", exc)
            return None
        if entry is None:
            if not creq.read_semantic:
                self.stats.misses += 1
            return None
        self.stats.hits_exact += 1
        return CacheHit("exact", entry, max(0.0, self._clock() - entry.created_s))

    async def lookup_semantic(
        self,
        creq: CacheRequest,
        embedding: npt.ArrayLike | None,
        kind: EmbeddingKind = "classifier",
        confirm: Confirm | None = None,
    ) -> CacheHit | None:
        """The nearest earlier answer in this request's scope, among embeddings of ``kind``,
        when it is similar enough and no false-hit guard objects; None otherwise (also without
        an embedding or on any error).

        For ``static`` (first-stage) embeddings the search returns up to
        ``static_candidates`` entries; those at or above ``static_similarity_threshold`` that
        pass the guards go to ``confirm``, and the best one whose transformer similarity
        reaches the single-stage threshold of its kind is the hit (without ``confirm``, none
        is)."""
        if not creq.read_semantic or embedding is None:
            self.stats.misses += 1
            return None
        settings = creq.settings
        count = settings.static_candidates if kind == "static" else 1
        try:
            async with asyncio.timeout(settings.timeout_ms / 1000):
                found = await self.semantic.nearest_many(
                    creq.tenant,
                    creq.canonical.scope,
                    np.asarray(embedding, np.float32),
                    count,
                    settings.search_ef,
                    kind,
                )
        except Exception as exc:
            self._failed("lookup_semantic", exc)
            self.stats.misses += 1
            return None
        now = self._clock()
        floor = settings.static_similarity_threshold if kind == "static" else creq.threshold(kind)
        near: list[tuple[float, CacheEntry]] = []
        guarded = False
        for element, cosine, entry in found:
            if entry is None or now - entry.created_s > settings.ttl_s:
                self._spawn(self._remove(creq, element, kind))
            elif cosine >= floor:
                # The guards are pure and cheap: they go before the transformer's check, so a
                # template near miss ("convert 5 km" / "convert 8 km") never costs a pass.
                if false_hit_reason(entry.prompt, creq.canonical.prompt) is None:
                    near.append((cosine, entry))
                else:
                    guarded = True
        best = near[0] if near and kind != "static" else None
        if kind == "static" and near and confirm is not None:
            best = await self._confirmed(creq, near, confirm)
        if best is None:
            self.stats.guard_rejects += guarded
            self.stats.misses += 1
            return None
        cosine, entry = best
        self.stats.hits_semantic += 1
        return CacheHit("semantic", entry, max(0.0, now - entry.created_s), cosine)

    async def _confirmed(
        self, creq: CacheRequest, near: list[tuple[float, CacheEntry]], confirm: Confirm
    ) -> tuple[float, CacheEntry] | None:
        """The best first-stage candidate by the transformer's similarity, if that reaches the
        threshold of its kind; its similarity replaces the first stage's."""
        self.stats.confirmations += 1
        try:
            verdicts = await confirm([entry.prompt for _, entry in near])
        except Exception as exc:
            self._failed("confirm", exc)
            return None
        best: tuple[float, CacheEntry] | None = None
        for (_, entry), v in zip(near, verdicts, strict=True):
            ok = v is not None and v.cosine >= creq.threshold(v.kind)
            if ok and v is not None and (best is None or v.cosine > best[0]):
                best = (v.cosine, entry)
        return best

    # ---- response side --------------------------------------------------------------------

    async def store(
        self,
        creq: CacheRequest,
        completion: Completion,
        embedding: npt.ArrayLike | None = None,
        kind: EmbeddingKind = "classifier",
    ) -> bool:
        """Store a complete, successful ``completion`` when the rules allow; True if stored.

        ``embedding`` (of ``kind``) files the entry for semantic lookups too.

        Pass only completions that arrived whole: a stream that was cut off, an error or a
        429 must never get here (for streams, see :class:`router.cache.replay.StreamAssembler`).
        """
        settings = creq.settings
        if not creq.write or response_uncacheable(completion.body, settings) is not None:
            self.stats.store_skips += 1
            return False
        entry = CacheEntry(
            body=completion.body,
            model=completion.model,
            usage=completion.usage,
            created_s=self._clock(),
            prompt=creq.canonical.prompt,
        )
        try:
            if len(entry.dumps()) > settings.max_entry_bytes:
                self.stats.store_skips += 1
                return False
            semantic = settings.semantic and embedding is not None and creq._semantic_prompt_ok
            async with asyncio.timeout(settings.timeout_ms / 1000):
                if semantic:
                    self.stats.evictions += await self.semantic.add(
                        creq.tenant,
                        creq.canonical.scope,
                        creq.canonical.digest,
                        np.asarray(embedding, np.float32),
                        entry,
                        settings.ttl_s,
                        settings.max_entries_per_scope,
                        kind,
                        exact_key(creq.tenant, creq.canonical.digest) if settings.exact else None,
                    )
                elif settings.exact:
                    await self.exact.put(creq.tenant, creq.canonical.digest, entry, settings.ttl_s)
        except Exception as exc:
            self._failed("store", exc)
            return False
        self.stats.stores += 1
        return True

    def store_later(
        self,
        creq: CacheRequest,
        completion: Completion,
        embedding: npt.ArrayLike | None = None,
        kind: EmbeddingKind = "classifier",
    ) -> None:
        """:meth:`store` in a background task, so the response is not delayed by it."""
        if creq.write:
            self._spawn(self.store(creq, completion, embedding, kind))

    async def drain(self) -> None:
        """Wait for background stores and evictions (tests, shutdown)."""
        await self._tasks.wait(TASK_KIND)

    async def aclose(self) -> None:
        """Finish background stores; the Redis client belongs to the caller."""
        await self.drain()

    # ---- internals ------------------------------------------------------------------------

    async def _remove(self, creq: CacheRequest, element: str, kind: EmbeddingKind) -> bool:
        try:
            async with asyncio.timeout(creq.settings.timeout_ms / 1000):
                await self.semantic.remove(creq.tenant, creq.canonical.scope, element, kind)
        except Exception as exc:
            self._failed("evict", exc)
            return False
        return True

    def _spawn(self, coro: Coroutine[Any, Any, bool]) -> None:
        self._tasks.spawn(TASK_KIND, coro)

    def _failed(self, op: str, exc: BaseException) -> None:
        self.stats.errors += 1
        name = f"{op}:{type(exc).__name__}"
        self.stats.by_error[name] = self.stats.by_error.get(name, 0) + 1
        now = time.monotonic()
        if now - self._last_log >= self._log_interval_s:
            self._last_log = now
            log.warning(
                "cache_failed_as_miss", op=op, error=repr(exc), cache_errors=self.stats.errors
            )
