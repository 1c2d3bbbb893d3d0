"""The observability hub: what ``Services`` holds, and the one per-request hook.

:func:`on_record` is called by ``pipeline.record`` exactly once per request, after the
ledger hand-off: it updates the metrics, feeds the drift window, emits trace spans (when
tracing is on), marks budget gauges for refresh and indexes the request for feedback. It
never raises into the request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from router.backends.registry import BackendRegistry
from router.budget.admission import scopes_for
from router.budget.pricing import model_cost_usd
from router.budget.reserve import Budgets
from router.errors import RouterError
from router.keys.store import RedisKeyStore
from router.observability.budget_gauge import BudgetGauge
from router.observability.drift import DriftMonitor, Reference
from router.observability.feedback import FeedbackStore, IndexEntry, prompt_digest
from router.observability.metrics import Metrics, RuntimeCollector
from router.observability.tracing import TraceFacts, Tracing
from router.outcome import Outcome
from router.policy.schema import Policy
from router.policy.store import PolicyStore
from router.protocol.chat_request import ChatRequest
from router.redis.mux import RedisMux
from router.settings import Settings

log = structlog.get_logger("router.observability")
NO_LABEL = "-"


@dataclass
class Observability:
    """Metrics, drift, tracing, budget gauges and the feedback store of one process."""

    metrics: Metrics = field(default_factory=Metrics)
    drift: DriftMonitor = field(default_factory=lambda: DriftMonitor(Reference.shipped()))
    tracing: Tracing | None = None
    feedback: FeedbackStore = field(default_factory=lambda: FeedbackStore(None))
    budget_gauge: BudgetGauge | None = None
    hook_errors: int = 0
    attached: bool = False
    """Whether the scrape-time collector is registered (on the first scrape)."""

    @classmethod
    def start(
        cls,
        redis: Any | None,
        budgets: Budgets,
        settings: Settings | None = None,
        fast: RedisMux | None = None,
    ) -> Observability:
        """Build everything, with tracing from ``settings`` and feedback on ``redis`` (its
        request index through ``fast``, the worker's multiplexed connection, when given).

        Without ``settings``, they are read from the environment.
        """
        s = settings if settings is not None else Settings()
        metrics = Metrics(multiproc_dir=s.metrics_multiproc_dir)
        return cls(
            metrics=metrics,
            tracing=Tracing.from_settings(s),
            feedback=FeedbackStore(redis, fast),
            budget_gauge=BudgetGauge(metrics, budgets),
        )

    def attach(self, queues: Callable[[], Iterable[tuple[str, int, int]]]) -> None:
        """Register the scrape-time collector; ``queues`` reports the local models' queues
        (see :func:`local_queues`). Once; idempotent."""
        if self.attached:
            return
        self.attached = True

        def drift() -> tuple[float | None, int, bool, int, int]:
            d = self.drift
            return d.current_psi(), d.samples, d.alerting, d.alerts, d.skipped

        self.metrics.add_runtime(RuntimeCollector(queues, drift))

    def rejected(self, error: RouterError) -> None:
        """Count a request refused before it had a routing decision (so it is not recorded)."""
        self.metrics.requests.get(NO_LABEL, NO_LABEL, str(error.status), NO_LABEL).inc()

    async def aclose(self) -> None:
        """Flush feedback index entries and traces."""
        await self.feedback.aclose()
        if self.budget_gauge is not None:
            await self.budget_gauge.aclose()
        if self.tracing is not None:
            self.tracing.shutdown()


def local_queues(
    policies: PolicyStore, backends: BackendRegistry
) -> Iterator[tuple[str, int, int]]:
    """``(model, waiting, running)`` of every in-process local model of the current policy."""
    for spec in policies.current.policy.models:
        if spec.backend != "local":
            continue
        try:
            backend = backends.for_model(spec)
        except RouterError:
            continue
        stats = getattr(backend, "stats", None)
        if not callable(stats):
            continue
        s = stats().get(spec.name)
        if s is not None:
            yield spec.name, int(s.waiting), int(s.running)


def on_record(
    obs: Observability,
    policy: Policy,
    keys: RedisKeyStore | None,
    req: ChatRequest,
    outcome: Outcome,
) -> None:
    """Update metrics, drift, traces, budget gauges and the feedback index for one request.

    ``policy`` is the current policy (drift and feedback settings, budget scopes); ``keys``
    finds the request's virtual key for the budget gauges.
    """
    try:
        _observe(obs, policy, keys, req, outcome)
    except Exception as exc:  # observability must never fail a request
        obs.hook_errors += 1
        log.error("observability_hook_failed", error=repr(exc), exc_info=exc)


def _observe(
    obs: Observability,
    policy: Policy,
    keys: RedisKeyStore | None,
    req: ChatRequest,
    outcome: Outcome,
) -> None:
    now = time.perf_counter()
    m = obs.metrics
    d = outcome.decision
    times = outcome.times
    route = d.route or NO_LABEL
    model = outcome.model_name
    team = outcome.ctx.team or NO_LABEL
    cache = outcome.cache
    m.requests.get(route, model, str(outcome.status), cache).inc()
    total = now - outcome.ctx.started_at
    m.latency.get(route).observe(total)
    m.overhead.get(route).observe(max(0.0, total - times.upstream_s))
    hit = outcome.cache_hit
    if times.admitted and not hit:
        m.upstream.get(model).observe(times.upstream_s)
    for failed_model, code in outcome.failures:
        m.upstream_failures.get(failed_model, code).inc()
    c = outcome.classification
    if c is not None:
        m.classifier.get(c.source).observe(c.latency_s)
        drift = policy.observability.drift
        if drift is not obs.drift.settings:  # a policy reload (identity check: cheap)
            obs.drift.configure(drift)
        obs.drift.observe(c.score, c.source)
    usage = outcome.usage
    if usage is not None:
        if usage.prompt_tokens and not hit:  # a hit's usage was served, not consumed
            m.tokens.get(team, model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens and not hit:
            m.tokens.get(team, model, "completion").inc(usage.completion_tokens)
        cost = outcome.cost_usd or 0.0
        if cost:
            m.spend.get(team, model).inc(cost)
        if d.strongest is not None:
            saved = model_cost_usd(d.strongest, usage) - cost
            if saved > 0:
                m.saved.get(team).inc(saved)
    hold = outcome.hold
    if hold is not None and not hold.local and obs.budget_gauge is not None:
        key = keys.cached(outcome.ctx.key_id) if keys is not None else None
        scopes, _limits = scopes_for(policy.budgets, key, outcome.ctx.team)
        obs.budget_gauge.mark(scopes)
    if outcome.status < 400:
        _index_for_feedback(policy, obs, req, outcome)
    if obs.tracing is not None:
        obs.tracing.record(_trace_facts(outcome, now, route, cache, hit))


def _index_for_feedback(
    policy: Policy, obs: Observability, req: ChatRequest, outcome: Outcome
) -> None:
    settings = policy.observability.feedback
    if not settings.enabled or obs.feedback.redis is None:
        return
    pairs = [(m.role, m.text()) for m in req.messages]
    d = outcome.decision
    fields = {
        "ts": repr(time.time()),
        "model": outcome.model_name,
        "route": d.route or "",
        "tier": d.tier or "",
        "score": "" if d.score is None else repr(d.score),
        "team": outcome.ctx.team or "",
        "policy_hash": outcome.policy_hash,
        "prompt_sha256": prompt_digest(pairs),
    }
    if settings.store_prompts:
        fields["messages"] = orjson.dumps([{"role": r, "content": t} for r, t in pairs]).decode()
    ttl_s = int(settings.retention_days * 86400)
    obs.feedback.index(IndexEntry(outcome.ctx.tenant, outcome.ctx.request_id, fields, ttl_s))


def _trace_facts(outcome: Outcome, now: float, route: str, cache: str, hit: bool) -> TraceFacts:
    t = outcome.times
    d = outcome.decision
    attrs: dict[str, str | int | float | bool] = {
        "router.request_id": outcome.ctx.request_id,
        "router.policy_hash": outcome.policy_hash,
        "router.route": route,
        "router.model": outcome.model_name,
        "router.cache": cache,
        "http.response.status_code": outcome.status,
    }
    if d.tier is not None:
        attrs["router.tier"] = d.tier
    if d.score is not None:
        attrs["router.score"] = d.score
    if outcome.cost_usd is not None:
        attrs["router.cost_usd"] = outcome.cost_usd
    return TraceFacts(
        started=outcome.ctx.started_at,
        planned=t.planned,
        routed=t.routed,
        admitted=0.0 if hit else t.admitted,  # a cache hit has no admission and no upstream
        upstream_s=t.upstream_s,
        ended=now,
        attributes=attrs,
        failures=outcome.failures,
        error=outcome.error_code,
    )
