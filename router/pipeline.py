"""The request path: one function that runs the stages of DESIGN.md in order.

``run_chat`` returns a :class:`ChatOutcome`: a whole completion, or a stream whose first chunk
has already arrived (so retries and fallbacks are over and the answering model is known when
headers are sent). Recording happens once per request, when the response is complete.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from router.backends.calls import (
    Attempts,
    BackendFor,
    complete_with_fallbacks,
    open_stream_with_fallbacks,
)
from router.budget.admission import admit_cache_hit, admit_request, check_request
from router.budget.pricing import model_cost_usd
from router.budget.reserve import Reservation
from router.cache.entry import CacheHit
from router.cache.rules import RESULT_HEADER
from router.cache.stage import (
    CacheStage,
    StreamRecorder,
    cache_settings,
    cache_variant,
    hit_completion,
    hit_decision,
    hit_stream,
)
from router.classify.base import Classification
from router.classify.heuristic import HeuristicClassifier
from router.context import RequestContext
from router.errors import RouterError, UpstreamError
from router.guard.stage import guard_request
from router.learning.shadow import ShadowJob, plan_shadow
from router.ledger.account import account, bill_after_disconnect
from router.ledger.drain import UpstreamReader, estimated_usage
from router.observability.hub import on_record
from router.observability.stages import StageTimes
from router.policy.load import LoadedPolicy
from router.protocol import sse
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.route.capabilities import estimate_prompt_tokens
from router.route.decision import Plan, RouteDecision, decide, plan_request
from router.route.share import share_thresholds

if TYPE_CHECKING:
    from router.services import Services

log = structlog.get_logger("router.request")


@dataclass(slots=True)
class ChatOutcome:
    """What the pipeline produced for one request."""

    ctx: RequestContext
    policy_hash: str
    decision: RouteDecision
    classification: Classification | None
    attempts: Attempts
    completion: Completion | None = None
    stream: AsyncIterator[bytes] | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    status: int = 200
    error_code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: Reservation | None = None
    """The budget reservation of stage 8, settled by ``record`` (stage 10)."""
    times: StageTimes = field(default_factory=StageTimes)
    """When each stage ran (for latency metrics, gateway overhead and trace spans)."""
    cache_status: str = "miss"
    """``miss``, ``hit-exact`` or ``hit-semantic`` (the ledger's ``cache`` column)."""
    shadow: ShadowJob | None = None
    """Set when the request is sampled for a shadow label (run after the response is sent)."""

    @property
    def model_name(self) -> str:
        """The policy name of the model that answered (or was last tried)."""
        model = self.attempts.model or self.decision.target
        return model.name


def response_headers(outcome: ChatOutcome) -> dict[str, str]:
    """The ``x-router-*`` headers of a response."""
    h = {
        "x-request-id": outcome.ctx.request_id,
        "x-router-model": outcome.model_name,
        "x-router-policy": outcome.policy_hash,
    }
    d = outcome.decision
    if d.route is not None:
        h["x-router-route"] = d.route
    if d.tier is not None and outcome.attempts.model is d.target:
        h["x-router-tier"] = d.tier
    if d.score is not None:
        h["x-router-score"] = f"{d.score:.4f}"
    if outcome.cost_usd is not None:
        h["x-router-cost-usd"] = f"{outcome.cost_usd:.8f}"
    reasons = []
    if d.fallback_reason:
        reasons.append(d.fallback_reason)
    if outcome.attempts.fell_back:
        failed = ", ".join(f"{m}: {code}" for m, code in outcome.attempts.failures)
        reasons.append(f"failed over after {failed}")
    if reasons:
        h["x-router-fallback"] = "; ".join(reasons)
    h.update(outcome.headers)
    return h


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


async def run_chat(
    services: Services, loaded: LoadedPolicy, req: ChatRequest, ctx: RequestContext
) -> ChatOutcome:
    """Route ``req`` and call its target; raise :class:`RouterError` when nothing answers."""
    policy = loaded.policy
    check_request(services, req, ctx)  # the key's model list, before the cache may answer
    plan = plan_request(policy, req, ctx)
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
        hit = await cache.semantic(classification.embedding)  # stage 6, same embedding
    if hit is not None:
        replayed = await _replay(services, loaded, req, ctx, plan, classification, hit)
        if guard is not None:  # a replayed answer says what the guard decided, too
            replayed.headers.update(guard.headers)
        return replayed
    thresholds = None
    if classification is not None and plan.route and plan.route.target_strong_share:
        thresholds = await _share_thresholds(services, plan, classification.score)
    decision = decide(
        policy, loaded.hash, plan, classification.score if classification else None, thresholds
    )
    if guard is not None:  # a request pinned local keeps only local fallbacks
        decision = guard.constrain(decision)

    attempts = Attempts()
    outcome = ChatOutcome(ctx, loaded.hash, decision, classification, attempts)
    outcome.times.planned, outcome.times.routed = planned, time.perf_counter()
    outcome.headers[RESULT_HEADER] = "miss"
    embedding = classification.embedding if classification is not None else None
    try:  # stage 8: key permissions, rate limits, budget reservation (may downgrade)
        await admit_request(services, loaded, req, plan, outcome)
    except RouterError as exc:
        record(services, req, outcome, exc)
        raise
    outcome.times.admitted = time.perf_counter()
    decision = outcome.decision
    outcome.shadow = plan_shadow(
        policy,
        req,
        plan,
        decision,
        classification.score if classification is not None else None,
        classification.source if classification is not None else "",
        ctx.request_id,
        ctx.tenant,
        guarded=guard is not None and (guard.pinned_local or bool(guard.found)),
    )
    backend_for: BackendFor = services.backends.for_model
    if guard is not None:  # per target: redact for hosted models, rewrite their answers
        outcome.headers.update(guard.headers)
        backend_for = guard.backend_for(backend_for, outcome.headers)
    if not req.stream:
        try:
            completion = await complete_with_fallbacks(req, decision, policy, backend_for, attempts)
        except RouterError as exc:
            outcome.times.upstream_s = time.perf_counter() - outcome.times.admitted
            record(services, req, outcome, exc)
            raise
        outcome.times.upstream_s = time.perf_counter() - outcome.times.admitted
        outcome.completion = completion
        outcome.usage = completion.usage
        answered = attempts.model or decision.target
        outcome.cost_usd = model_cost_usd(answered, completion.usage)
        record(services, req, outcome, None)
        if cache is not None:  # stage 12, in the background
            cache.store(completion, embedding)
        return outcome

    try:
        first, rest = await open_stream_with_fallbacks(req, decision, policy, backend_for, attempts)
    except RouterError as exc:
        outcome.times.upstream_s = time.perf_counter() - outcome.times.admitted
        record(services, req, outcome, exc)
        raise
    outcome.times.upstream_s = time.perf_counter() - outcome.times.admitted
    recorder = None
    if cache is not None:
        recorder = cache.recorder((attempts.model or decision.target).name, embedding)
    outcome.stream = _relay(services, req, outcome, first, UpstreamReader(rest), recorder)
    return outcome


async def _replay(
    services: Services,
    loaded: LoadedPolicy,
    req: ChatRequest,
    ctx: RequestContext,
    plan: Plan,
    classification: Classification | None,
    hit: CacheHit,
) -> ChatOutcome:
    """Answer from the cache: no budget, no upstream, zero cost; request-rate limits apply."""
    decision = hit_decision(loaded.policy, loaded.hash, plan, hit)
    outcome = ChatOutcome(ctx, loaded.hash, decision, classification, Attempts())
    now = time.perf_counter()
    outcome.times.planned = outcome.times.routed = outcome.times.admitted = now
    try:
        await admit_cache_hit(services, loaded, outcome)
    except RouterError as exc:  # rate-limited: refused, not served from the cache
        record(services, req, outcome, exc)
        raise
    outcome.cache_status = hit.header
    outcome.headers[RESULT_HEADER] = hit.header
    outcome.cost_usd = 0.0  # a hit is not billed
    # ...but its ledger row keeps the cached answer's usage, so that its counterfactual is
    # the cost the cache saved (reports split savings into routing and cache by it).
    outcome.usage = hit.entry.usage
    if not req.stream:
        outcome.completion = hit_completion(hit)
        record(services, req, outcome, None)
        return outcome

    async def replay() -> AsyncIterator[bytes]:
        try:
            async for event in hit_stream(hit, req.include_usage):
                yield event
        finally:
            record(services, req, outcome, None)

    outcome.stream = replay()
    return outcome


async def _relay(
    services: Services,
    req: ChatRequest,
    outcome: ChatOutcome,
    first: Chunk,
    rest: AsyncIterator[Chunk],
    recorder: StreamRecorder | None = None,
) -> AsyncIterator[bytes]:
    """Forward chunks to the client; end with an error event on failure, always ``[DONE]``.

    ``recorder`` sees every chunk and stores the completion only when the stream ended well.
    """
    include_usage = req.include_usage
    answered = outcome.attempts.model or outcome.decision.target
    failure: RouterError | None = None
    chunk: Chunk | None = first
    try:
        while chunk is not None:
            if recorder is not None:
                recorder.add(chunk)
            if outcome.shadow is not None:
                outcome.shadow.observe(chunk)
            if chunk.usage is not None:
                outcome.usage = chunk.usage
                outcome.cost_usd = model_cost_usd(answered, chunk.usage)
                if include_usage and not chunk.data.get("choices"):
                    yield sse.usage_event_with_cost(chunk, outcome.cost_usd)
                    waited = time.perf_counter()
                    chunk = await anext(rest, None)
                    outcome.times.upstream_s += time.perf_counter() - waited
                    continue
            ev = sse.chunk_event(chunk, include_usage)
            if ev is not None:
                yield ev
            waited = time.perf_counter()
            chunk = await anext(rest, None)
            outcome.times.upstream_s += time.perf_counter() - waited
        if recorder is not None:  # the upstream finished without an error: cache it
            recorder.finish()
    except UpstreamError as exc:
        failure = exc
        yield sse.error_event(exc)
    finally:
        # Runs on success, on upstream failure, and when the client goes away (cancellation).
        if failure is None and outcome.usage is None and chunk is not None:
            # The client left mid-stream: bill from the upstream's usage once it has finished.
            bill_after_disconnect(services, req, outcome, rest, answered, record)
        else:
            if outcome.usage is None:
                # The upstream failed mid-stream or never sent usage. It still bills the prompt
                # and what it generated, so the ledger and the budget get an estimate (flagged
                # ``estimated``), not $0.
                reader = rest if isinstance(rest, UpstreamReader) else None
                outcome.usage = estimated_usage(estimate_prompt_tokens(req), reader, 0)
                outcome.cost_usd = model_cost_usd(answered, outcome.usage)
                if failure is None:
                    outcome.error_code = "no_usage"
            record(services, req, outcome, failure)
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()
    yield sse.DONE


def record(
    services: Services, req: ChatRequest, outcome: ChatOutcome, error: RouterError | None
) -> None:
    """Write the request's one access-log line (and, later, its ledger row)."""
    if error is not None:
        outcome.status = error.status
        outcome.error_code = error.code
    account(services, req, outcome)  # stages 10 and 11: settle the reservation, ledger row
    on_record(services, req, outcome, error)  # metrics, drift, traces, feedback index
    if not services.settings.access_log:
        return
    d = outcome.decision
    usage = outcome.usage
    log.info(
        "request",
        request_id=outcome.ctx.request_id,
        policy_hash=outcome.policy_hash,
        route=d.route,
        tier=d.tier,
        model=outcome.model_name,
        score=None if d.score is None else round(d.score, 4),
        reason=d.reason,
        stream=req.stream,
        status=outcome.status,
        error=outcome.error_code,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        cost_usd=outcome.cost_usd,
        attempts=len(outcome.attempts.failures) + (0 if error else 1),
        latency_ms=round((time.perf_counter() - outcome.ctx.started_at) * 1000, 2),
    )
