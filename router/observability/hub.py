"""The observability hub: what ``Services`` holds, and the one per-request hook.

:func:`on_record` is called by ``pipeline.record`` exactly once per request, after the
ledger hand-off: it updates the metrics, feeds the drift window, emits trace spans (when
tracing is on), marks budget gauges for refresh and indexes the request for feedback. It
never raises into the request.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import structlog

from router.backends.calls import Attempts
from router.budget.admission import scopes_for
from router.budget.pricing import model_cost_usd
from router.budget.reserve import Budgets, Reservation
from router.classify.base import Classification
from router.context import RequestContext
from router.errors import RouterError
from router.observability.budget_gauge import BudgetGauge
from router.observability.drift import DriftMonitor, Reference
from router.observability.feedback import FeedbackStore, IndexEntry, prompt_digest
from router.observability.metrics import Metrics, RuntimeCollector
from router.observability.stages import StageTimes
from router.observability.tracing import TraceFacts, Tracing
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Usage
from router.route.decision import RouteDecision
from router.settings import Settings

if TYPE_CHECKING:
    from router.services import Services

log = structlog.get_logger("router.observability")
NO_LABEL = "-"
CACHE_HITS = frozenset({"exact", "semantic"})


class Recorded(Protocol):
    """The parts of :class:`router.pipeline.ChatOutcome` the hook reads."""

    ctx: RequestContext
    policy_hash: str
    decision: RouteDecision
    classification: Classification | None
    attempts: Attempts
    usage: Usage | None
    cost_usd: float | None
    status: int
    error_code: str | None
    hold: Reservation | None
    times: StageTimes

    @property
    def model_name(self) -> str:
        """The model that answered or was last tried."""
        ...


@dataclass
class Observability:
    """Metrics, drift, tracing, budget gauges and the feedback store of one process."""

    metrics: Metrics = field(default_factory=Metrics)
    drift: DriftMonitor = field(default_factory=lambda: DriftMonitor(Reference.shipped()))
    tracing: Tracing | None = None
    feedback: FeedbackStore = field(default_factory=lambda: FeedbackStore(None))
    budget_gauge: BudgetGauge | None = None
    recorded_errors: weakref.WeakSet[BaseException] = field(default_factory=weakref.WeakSet)
    """Errors already counted by :func:`on_record` (so the API does not count them again)."""
    hook_errors: int = 0
    attached: bool = False
    """Whether the scrape-time collector is registered (on the first scrape)."""

    @classmethod
    def start(
        cls, redis: Any | None, budgets: Budgets, settings: Settings | None = None
    ) -> Observability:
        """Build everything, with tracing from ``settings`` and feedback on ``redis``.

        Without ``settings``, they are read from the environment.
        """
        s = settings if settings is not None else Settings()
        metrics = Metrics(multiproc_dir=s.metrics_multiproc_dir)
        return cls(
            metrics=metrics,
            tracing=Tracing.from_settings(s),
            feedback=FeedbackStore(redis),
            budget_gauge=BudgetGauge(metrics, budgets),
        )

    def attach(self, services: Services) -> None:
        """Register the scrape-time collector that reads ``services`` (once; idempotent)."""
        if self.attached:
            return
        self.attached = True
        ref = weakref.ref(services)

        def queues() -> Iterator[tuple[str, int, int]]:
            s = ref()
            if s is not None:
                yield from local_queues(s)

        def drift() -> tuple[float | None, int, bool, int, int]:
            d = self.drift
            return d.current_psi(), d.samples, d.alerting, d.alerts, d.skipped

        self.metrics.add_runtime(RuntimeCollector(queues, drift))

    def rejected(self, error: RouterError) -> None:
        """Count a request the API rejected before (or without) the pipeline recording it."""
        if error in self.recorded_errors:
            return
        self.metrics.requests.get(NO_LABEL, NO_LABEL, str(error.status), NO_LABEL).inc()

    async def aclose(self) -> None:
        """Flush feedback index entries and traces."""
        await self.feedback.aclose()
        if self.budget_gauge is not None:
            await self.budget_gauge.aclose()
        if self.tracing is not None:
            self.tracing.shutdown()


def local_queues(services: Services) -> Iterator[tuple[str, int, int]]:
    """``(model, waiting, running)`` of every in-process local model of the current policy."""
    for spec in services.policies.current.policy.models:
        if spec.backend != "local":
            continue
        try:
            backend = services.backends.for_model(spec)
        except RouterError:
            continue
        stats = getattr(backend, "stats", None)
        if not callable(stats):
            continue
        s = stats().get(spec.name)
        if s is not None:
            yield spec.name, int(s.waiting), int(s.running)


def on_record(
    services: Services, req: ChatRequest, outcome: Recorded, error: RouterError | None
) -> None:
    """Update metrics, drift, traces, budget gauges and the feedback index for one request."""
    obs: Observability = services.observability
    try:
        _observe(services, obs, req, outcome, error)
    except Exception as exc:  # observability must never fail a request
        obs.hook_errors += 1
        log.error("observability_hook_failed", error=repr(exc), exc_info=exc)


def _observe(
    services: Services,
    obs: Observability,
    req: ChatRequest,
    outcome: Recorded,
    error: RouterError | None,
) -> None:
    now = time.perf_counter()
    m = obs.metrics
    d = outcome.decision
    times = outcome.times
    route = d.route or NO_LABEL
    model = outcome.model_name
    team = outcome.ctx.team or NO_LABEL
    cache = str(getattr(outcome, "cache_status", None) or "miss").removeprefix("hit-")
    if error is not None:
        obs.recorded_errors.add(error)
    m.requests.get(route, model, str(outcome.status), cache).inc()
    total = now - outcome.ctx.started_at
    m.latency.get(route).observe(total)
    m.overhead.get(route).observe(max(0.0, total - times.upstream_s))
    hit = cache in CACHE_HITS
    if times.admitted and not hit:
        m.upstream.get(model).observe(times.upstream_s)
    for failed_model, code in outcome.attempts.failures:
        m.upstream_failures.get(failed_model, code).inc()
    c = outcome.classification
    if c is not None:
        m.classifier.get(c.source).observe(c.latency_s)
        policy = services.policies.current.policy
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
        _mark_budgets(services, obs.budget_gauge, outcome)
    if outcome.status < 400:
        _index_for_feedback(services, obs, req, outcome)
    if obs.tracing is not None:
        obs.tracing.record(_trace_facts(outcome, now, route, cache, hit))


def _mark_budgets(services: Services, gauge: BudgetGauge, outcome: Recorded) -> None:
    key = services.keys.cached(outcome.ctx.key_id) if services.keys is not None else None
    policy = services.policies.current.policy
    scopes, _limits = scopes_for(policy.budgets, key, outcome.ctx.team)
    gauge.mark(scopes)


def _index_for_feedback(
    services: Services, obs: Observability, req: ChatRequest, outcome: Recorded
) -> None:
    settings = services.policies.current.policy.observability.feedback
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


def _trace_facts(outcome: Recorded, now: float, route: str, cache: str, hit: bool) -> TraceFacts:
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
        failures=tuple(outcome.attempts.failures),
        error=outcome.error_code,
    )
