"""Stages 10 and 11, and what every request leaves behind: recorded once, from one outcome.

:func:`record` is the only place a finished request is written down: its ledger row (which
settles the budget reservation), its metrics, drift sample, trace spans and feedback index entry
(:func:`router.observability.hub.on_record`), and its access-log line. The pipeline calls it
exactly once per request that got a routing decision, when the request is over.
"""

from __future__ import annotations

import time

import structlog

from router.budget.pricing import model_cost_usd
from router.ledger.record import LedgerRecord
from router.observability.hub import on_record
from router.outcome import Outcome
from router.protocol.chat_request import ChatRequest
from router.services import Services

log = structlog.get_logger("router.request")


def ledger_record(outcome: Outcome) -> LedgerRecord:
    """The ledger record of ``outcome``; costs recomputed from its usage at policy prices."""
    d = outcome.decision
    usage = outcome.usage
    answered = outcome.answered or d.target
    hit = outcome.cache_hit  # served tokens, not billed ones
    cost = model_cost_usd(answered, usage) if usage is not None and not hit else 0.0
    strongest = d.strongest or answered
    counterfactual = model_cost_usd(strongest, usage) if usage is not None else 0.0
    now_wall, now_mono = time.time(), time.perf_counter()
    ctx = outcome.ctx
    return LedgerRecord(
        ts=now_wall - (now_mono - ctx.started_at),
        request_id=ctx.request_id,
        tenant=ctx.tenant,
        key_id=ctx.key_id,
        team=ctx.team,
        route=d.route,
        tier=d.tier,
        reason=d.reason,
        score=d.score,
        model=outcome.model_name,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        estimated=bool(usage and usage.estimated),
        cost_usd=cost,
        counterfactual_usd=counterfactual,
        cache=outcome.cache,
        latency_ms=round((now_mono - ctx.started_at) * 1000, 3),
        policy_hash=outcome.policy_hash,
        status=outcome.status,
        error=outcome.error_code,
        stream=outcome.stream,
        fallback=outcome.fell_back,
        cache_read_tokens=usage.cache_read_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
    )


def record(services: Services, req: ChatRequest, outcome: Outcome) -> None:
    """Write the request's ledger row, metrics and access-log line (never raises)."""
    ledger = services.ledger
    if ledger is not None:
        try:
            rec = ledger_record(outcome)
        except Exception as exc:  # accounting must never fail a response
            services.counters["ledger_errors"] += 1
            log.error("ledger_record_failed", error=repr(exc), exc_info=exc)
        else:
            ledger.finish(rec, outcome.hold)  # settles the reservation, in the background
    policy = services.policies.current.policy
    on_record(services.observability, policy, services.keys, req, outcome)
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
        attempts=len(outcome.failures) + (0 if outcome.error else 1),
        latency_ms=round((time.perf_counter() - outcome.ctx.started_at) * 1000, 2),
    )
