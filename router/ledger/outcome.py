"""Turn a finished request (the pipeline's outcome) into its ledger record."""

from __future__ import annotations

import time
from typing import Protocol

from router.backends.calls import Attempts
from router.budget.pricing import model_cost_usd
from router.budget.reserve import Reservation
from router.context import RequestContext
from router.ledger.record import LedgerRecord
from router.protocol.chat_response import Usage
from router.route.decision import RouteDecision


class Finished(Protocol):
    """The parts of :class:`router.pipeline.ChatOutcome` a record is made of."""

    ctx: RequestContext
    policy_hash: str
    decision: RouteDecision
    attempts: Attempts
    usage: Usage | None
    cost_usd: float | None
    status: int
    error_code: str | None
    hold: Reservation | None

    @property
    def model_name(self) -> str:
        """The model that answered or was last tried."""
        ...


def record_of(outcome: Finished, stream: bool, cache: str = "miss") -> LedgerRecord:
    """The ledger record of ``outcome``; costs recomputed from its usage at policy prices."""
    d = outcome.decision
    usage = outcome.usage
    answered = outcome.attempts.model or d.target
    hit = cache in ("exact", "semantic")  # served tokens, not billed ones
    cost = model_cost_usd(answered, usage) if usage is not None and not hit else 0.0
    strongest = d.strongest or answered
    counterfactual = model_cost_usd(strongest, usage) if usage is not None else 0.0
    now_wall, now_mono = time.time(), time.perf_counter()
    return LedgerRecord(
        ts=now_wall - (now_mono - outcome.ctx.started_at),
        request_id=outcome.ctx.request_id,
        tenant=outcome.ctx.tenant,
        key_id=outcome.ctx.key_id,
        team=outcome.ctx.team,
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
        cache=cache,
        latency_ms=round((now_mono - outcome.ctx.started_at) * 1000, 3),
        policy_hash=outcome.policy_hash,
        status=outcome.status,
        error=outcome.error_code,
        stream=stream,
        fallback=outcome.attempts.fell_back,
        cache_read_tokens=usage.cache_read_tokens if usage else 0,
        cache_write_tokens=usage.cache_write_tokens if usage else 0,
    )
