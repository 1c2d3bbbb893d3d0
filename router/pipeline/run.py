"""The request path: one function that runs the stages of DESIGN.md in order.

``run_chat`` returns a :class:`ChatOutcome`: a whole completion, or a stream whose first chunk
has already arrived (so retries and fallbacks are over and the answering model is known when
headers are sent). Each stage takes values and returns values; the request's state lives in a
:class:`Run` that only this package writes. A request that got a routing decision is recorded
exactly once, when it is over: by the ``finally`` of :func:`run_chat` for a whole answer or an
error, by the stream's own ``finally`` (:mod:`router.pipeline.stream`) for a stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import structlog

from router.backends.calls import BackendFor, complete_with_fallbacks, open_stream_with_fallbacks
from router.budget.admission import admit_cache_hit, admit_request, check_request
from router.budget.pricing import model_cost_usd
from router.cache.entry import CacheHit
from router.cache.rules import RESULT_HEADER
from router.cache.semantic import EmbeddingKind
from router.cache.stage import (
    CacheStage,
    cache_settings,
    cache_variant,
    hit_completion,
    hit_decision,
)
from router.classify.base import Classification, Confirmation, is_turn_embedder, is_two_stage
from router.classify.heuristic import HeuristicClassifier
from router.context import RequestContext
from router.errors import RouterError
from router.guard.backend import guarded
from router.guard.stage import GuardVerdict, guard_request
from router.learning.shadow import plan_shadow
from router.ledger.drain import reader_for
from router.pipeline.context import ChatOutcome, Run, response_headers
from router.pipeline.record import record
from router.pipeline.stream import relay, replay
from router.policy.load import LoadedPolicy
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest
from router.route.capabilities import near_limit_models
from router.route.decision import Plan, adjust, decide, plan_request
from router.route.share import share_thresholds
from router.services import Services

__all__ = ["ChatOutcome", "response_headers", "run_chat"]

log = structlog.get_logger("router.request")


def _headers(run: Run) -> dict[str, str]:
    """The ``x-router-*`` headers of the response, as the request stands when it is sent."""
    answered = run.answered
    h = {
        "x-request-id": run.ctx.request_id,
        "x-router-model": answered.name,
        "x-router-policy": run.policy_hash,
    }
    d = run.decision
    if d.route is not None:
        h["x-router-route"] = d.route
    if d.tier is not None and run.attempts.model is d.target:
        h["x-router-tier"] = d.tier
    if d.score is not None:
        h["x-router-score"] = f"{d.score:.4f}"
    if run.cost_usd is not None:
        h["x-router-cost-usd"] = f"{run.cost_usd:.8f}"
    reasons = []
    if d.fallback_reason:
        reasons.append(d.fallback_reason)
    if run.attempts.fell_back:
        failed = ", ".join(f"{m}: {code}" for m, code in run.attempts.failures)
        reasons.append(f"failed over after {failed}")
    if reasons:
        h["x-router-fallback"] = "; ".join(reasons)
    h.update(run.headers)
    return h


def _called(run: Run) -> tuple[ModelSpec, ...]:
    """The models the request was sent to: those that failed, and the one that answered."""
    failed = {name for name, _ in run.attempts.failures}
    d = run.decision
    return tuple(m for m in (d.target, *d.fallbacks) if m.name in failed or m is run.attempts.model)


async def _classify(services: Services, req: ChatRequest) -> Classification:
    """The configured classifier's verdict; the heuristic's if the classifier fails."""
    try:
        return await services.classifier.classify(req)
    except Exception as exc:  # a broken model must not fail the request
        services.counters["classifier_errors"] += 1
        log.warning("classifier_failed", error=repr(exc))
        return await HeuristicClassifier().classify(req)


async def _share_thresholds(
    services: Services, plan: Plan, score: float
) -> tuple[float, ...] | None:
    """Tier thresholds that send the route's target share of recent traffic to its top tier."""
    assert plan.route is not None and plan.route.target_strong_share is not None
    window = services.score_window(plan.route.alias)
    await window.observe(score)
    top = await window.threshold(plan.route.target_strong_share)
    if top is None:  # warming up: the policy's own thresholds
        return None
    return share_thresholds(tuple(t.min_score for t in plan.eligible), top)


async def _semantic_lookup(
    services: Services, req: ChatRequest, cache: CacheStage, classification: Classification
) -> CacheHit | None:
    """Stage 6 with the best embedding the classifier offers (see :func:`_cache_embedding`)."""
    embedder = services.classifier
    if is_two_stage(embedder):
        try:
            vector = classification.static_embedding
            if vector is None and cache.wants_static:
                vector = embedder.embed_static(req)
        except Exception as exc:  # a cache miss, never a failed request
            services.counters["classifier_errors"] += 1
            log.warning("cache_embedding_failed", error=repr(exc))
            vector = None
        if vector is not None:
            turns = cache.request.settings.semantic_turns

            async def confirm(candidates: Sequence[str]) -> list[Confirmation | None]:
                return await embedder.confirm(req, candidates, classification, turns)

            return await cache.semantic(vector, "static", confirm)
    embedding, kind = await _cache_embedding(services, req, cache, classification)
    return await cache.semantic(embedding, kind)


async def _cache_embedding(
    services: Services, req: ChatRequest, cache: CacheStage, classification: Classification
) -> tuple[npt.NDArray[np.float32] | None, EmbeddingKind]:
    """The single-stage cache's embedding (a classifier without a static first stage): the
    classifier's own when it covered the whole last turn (no extra cost), otherwise, when the
    cache would use one, an extra whole-turn encoder pass (None for a turn past its cap, or
    when it fails)."""
    if classification.embedding is not None:
        return classification.embedding, "classifier"
    embedder = services.classifier
    if not cache.wants_embedding or not is_turn_embedder(embedder):
        return None, "turn"
    try:
        return await embedder.embed_turn(req), "turn"
    except Exception as exc:  # a cache miss, never a failed request
        services.counters["classifier_errors"] += 1
        log.warning("cache_embedding_failed", error=repr(exc))
        return None, "turn"


async def run_chat(
    services: Services, loaded: LoadedPolicy, req: ChatRequest, ctx: RequestContext
) -> ChatOutcome:
    """Route ``req`` and call its target; raise :class:`RouterError` when nothing answers.

    A request refused before it has a routing decision (the key's model list, the plan, the
    guard) is not recorded, only counted as rejected. Every other request is recorded once,
    when it is over: a whole answer or an error by the ``finally`` below, a stream by its relay
    (or replay), however the stream ends.
    """
    try:
        run, plan, guard, cache, hit = await _route(services, loaded, req, ctx)
    except RouterError as exc:
        services.observability.rejected(exc)
        raise
    error: RouterError | None = None
    ended = False
    try:
        if hit is not None:
            chat = await _answer_from_cache(services, loaded, run, hit, guard)
        else:
            chat = await _answer(services, loaded, run, plan, guard, cache)
        ended = chat.stream is None
        return chat
    except RouterError as exc:
        error, ended = exc, True
        raise
    finally:
        if ended:
            record(services, req, run.finish(error))
            if error is None and hit is None and cache is not None and run.completion is not None:
                # stage 12 after 10 and 11, in the background: a whole answer is cached
                cache.store(run.completion, cache.embedding)


async def _exact_prompt_tokens(
    services: Services, policy: Policy, req: ChatRequest
) -> dict[str, int]:
    """The prompt counted with the tokenizer of each model it might not fit (none for the
    usual request, far from every window), in a worker thread: a tokenizer pass over a long
    prompt takes milliseconds, and the first use of an encoding loads it."""
    near = near_limit_models(policy, req)
    if not near:
        return {}
    return await asyncio.to_thread(services.tokens.count_many, near, req)


async def _route(
    services: Services, loaded: LoadedPolicy, req: ChatRequest, ctx: RequestContext
) -> tuple[Run, Plan, GuardVerdict | None, CacheStage | None, CacheHit | None]:
    """Stages 1 to 7: the plan, the guard, the cache lookups, the score and the decision."""
    policy = loaded.policy
    check_request(services.keys, req, ctx)  # the key's model list, before the cache may answer
    plan = plan_request(policy, req, ctx, await _exact_prompt_tokens(services, policy, req))
    guard = guard_request(policy, req, plan, ctx)  # stage 2: may block, pin local or redact
    if guard is not None:
        plan = guard.plan

    planned = time.perf_counter()
    caching = cache_settings(policy)
    if guard is not None:  # own namespace per guard treatment; no semantic cache for PII
        caching = guard.cache_settings(caching)
    cache = CacheStage.begin(  # stage 4: exact lookup (a miss on any cache failure)
        services.cache, req, ctx.tenant, caching, ctx.cache_headers, cache_variant(plan)
    )
    hit = await cache.exact() if cache is not None else None
    classification = await _classify(services, req) if plan.needs_score and not hit else None
    if hit is None and cache is not None and classification is not None:
        hit = await _semantic_lookup(services, req, cache, classification)  # stage 6
    if hit is not None:
        run = Run(
            ctx, loaded.hash, req, hit_decision(policy, loaded.hash, plan, hit), classification
        )
        run.planned = run.routed = run.admitted = time.perf_counter()
        return run, plan, guard, cache, hit

    thresholds = None
    if classification is not None and plan.route and plan.route.target_strong_share:
        thresholds = await _share_thresholds(services, plan, classification.score)
    decision = decide(
        policy, loaded.hash, plan, classification.score if classification else None, thresholds
    )
    if guard is not None and guard.keep_local is not None:  # pinned: local models only
        decision = adjust(policy, loaded.hash, plan, decision, guard.keep_local) or decision
    run = Run(ctx, loaded.hash, req, decision, classification)
    run.planned, run.routed = planned, time.perf_counter()
    run.headers[RESULT_HEADER] = "miss"
    return run, plan, guard, cache, None


async def _answer_from_cache(
    services: Services,
    loaded: LoadedPolicy,
    run: Run,
    hit: CacheHit,
    guard: GuardVerdict | None,
) -> ChatOutcome:
    """Answer from the cache: no budget, no upstream, zero cost; request-rate limits apply."""
    admission = await admit_cache_hit(  # rate-limited: refused, not served from the cache
        services.budgets, services.keys, loaded, run.decision, run.ctx
    )
    run.hold = admission.hold
    run.headers.update(admission.headers)
    run.cache = hit.kind
    run.headers[RESULT_HEADER] = hit.header
    if guard is not None:  # a replayed answer says what the guard decided, too
        run.headers.update(guard.headers)
    run.cost_usd = 0.0  # a hit is not billed
    # ...but its ledger row keeps the cached answer's usage, so that its counterfactual is
    # the cost the cache saved (reports split savings into routing and cache by it).
    run.usage = hit.entry.usage
    if not run.req.stream:
        run.completion = hit_completion(hit)
        return ChatOutcome(_headers(run), run.completion, None, None, run)
    return ChatOutcome(_headers(run), None, replay(services, run, hit), None, run)


async def _answer(
    services: Services,
    loaded: LoadedPolicy,
    run: Run,
    plan: Plan,
    guard: GuardVerdict | None,
    cache: CacheStage | None,
) -> ChatOutcome:
    """Stages 8 to 12: admit, call the target (retries, fallbacks), cache the answer."""
    policy, req, ctx = loaded.policy, run.req, run.ctx
    ledger = services.ledger
    admission = await admit_request(  # stage 8: key permissions, rate limits, reservation
        services.budgets,
        services.keys,
        loaded,
        req,
        plan,
        run.decision,
        ctx,
        ledger.spawn if ledger is not None else None,
    )
    run.decision, run.hold = admission.decision, admission.hold
    run.headers.update(admission.headers)
    run.admitted = time.perf_counter()
    decision = run.decision
    classification = run.classification
    shadow = plan_shadow(
        policy,
        req,
        plan,
        decision,
        classification.score if classification is not None else None,
        classification.source if classification is not None else "",
        ctx.request_id,
        ctx.tenant,
        guarded=guard is not None and not guard.shadowable,
    )
    backend_for: BackendFor = services.backends.for_model
    if guard is not None:  # per target: redact for hosted models, rewrite their answers
        backend_for = guarded(backend_for, guard)
    embedding = cache.embedding if cache is not None else None
    if not req.stream:
        try:
            completion = await complete_with_fallbacks(
                req, decision, policy, backend_for, run.attempts
            )
        finally:
            run.upstream_s = time.perf_counter() - run.admitted
        if guard is not None:
            run.headers.update(guard.response_headers(_called(run)))
        run.completion = completion
        run.usage = completion.usage
        run.cost_usd = model_cost_usd(run.answered, completion.usage)
        return ChatOutcome(_headers(run), completion, None, shadow, run)

    try:
        first, rest = await open_stream_with_fallbacks(
            req, decision, policy, backend_for, run.attempts
        )
    finally:
        run.upstream_s = time.perf_counter() - run.admitted
    if guard is not None:
        run.headers.update(guard.response_headers(_called(run)))
    recorder = cache.recorder(run.answered.name, embedding) if cache is not None else None
    stream = relay(services, run, first, reader_for(rest), recorder, shadow)
    return ChatOutcome(_headers(run), None, stream, shadow, run)
