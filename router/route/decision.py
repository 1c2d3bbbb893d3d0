"""RouteDecision and the decision rule: overrides, rules, capability gates, score thresholds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from router.context import RequestContext
from router.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
)
from router.policy.schema import ModelSpec, Policy, Route, Rule, Tier
from router.protocol.chat_request import ChatRequest
from router.route.capabilities import Requirements, requirements_of


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """Where a request goes, what to try if that fails, and why."""

    target: ModelSpec
    fallbacks: tuple[ModelSpec, ...]
    score: float | None
    reason: str
    policy_hash: str
    route: str | None = None
    tier: str | None = None
    fallback_reason: str | None = None
    """Why the target is not the model the rule chose (e.g. the hosted key is not set)."""
    strongest: ModelSpec | None = None
    """The route's strongest eligible tier: the counterfactual for savings reports."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What is known before the classifier runs."""

    route: Route | None
    requirements: Requirements
    eligible: tuple[Tier, ...]
    """The route's tiers whose model can serve the request, weakest first."""
    pinned: ModelSpec | None
    pinned_tier: str | None
    reason: str

    @property
    def needs_score(self) -> bool:
        """Whether the classifier's score decides between several eligible tiers."""
        return self.pinned is None and len(self.eligible) > 1


def _rule_matches(rule: Rule, req_caps: Requirements, ctx: RequestContext) -> bool:
    w = rule.when
    caps = {"tools": req_caps.tools, "json_schema": req_caps.json_schema, "vision": req_caps.vision}
    if w.capability and not all(caps[c] for c in w.capability):
        return False
    if w.team and ctx.team not in w.team:
        return False
    if w.key and ctx.key_id not in w.key:
        return False
    return not (w.hint and ctx.hint not in w.hint)


def _resolve_use(policy: Policy, route: Route, use: str) -> tuple[ModelSpec, str | None] | None:
    tier = route.tier(use)
    if tier is not None:
        model = policy.model(tier.model)
        return (model, tier.name) if model is not None else None
    model = policy.model(use)
    return (model, None) if model is not None else None


def plan_request(
    policy: Policy,
    req: ChatRequest,
    ctx: RequestContext,
    exact_prompt_tokens: Mapping[str, int] = MappingProxyType({}),
) -> Plan:
    """Resolve the requested model or route, overrides, rules and capability gates.

    ``exact_prompt_tokens``: the prompt counted with a model's own tokenizer, by model name
    (:func:`router.route.capabilities.near_limit_models` says which are worth counting); the
    context-window gate uses the estimate for the others.
    """
    reqs = requirements_of(req, exact_prompt_tokens)
    route = policy.route(req.model)
    if route is None:
        model = policy.model(req.model)
        if model is None:
            raise NotFound(
                f"The model '{req.model}' does not exist; GET /v1/models lists what this "
                "gateway serves.",
                param="model",
            )
        if model.kind == "embedding":
            raise InvalidRequest(
                f"The model '{model.name}' is an embedding model; use POST /v1/embeddings.",
                param="model",
                code="model_not_supported",
            )
        unmet = reqs.unmet(model)
        if unmet is not None:
            raise _refusal(
                f"The model '{model.name}' does not support {unmet[1]}.", unmet, reqs, (model,)
            )
        return Plan(None, reqs, (), model, None, f"model '{model.name}' requested by name")

    eligible = tuple(t for t in route.tiers if _eligible(policy, t, reqs))
    if not eligible:
        unmet = _first_unmet(policy, route, reqs)
        models = tuple(m for t in route.tiers if (m := policy.model(t.model)) is not None)
        raise _refusal(
            f"No model behind route '{route.alias}' supports {unmet[1]}.", unmet, reqs, models
        )

    if ctx.route_override:
        if not route.allow_override:
            raise PermissionDenied(
                f"Route '{route.alias}' does not allow the x-router-route override.",
                param="x-router-route",
            )
        resolved = _resolve_use(policy, route, ctx.route_override)
        if resolved is None:
            raise InvalidRequest(
                f"x-router-route '{ctx.route_override}' is neither a tier of route "
                f"'{route.alias}' nor a model.",
                param="x-router-route",
            )
        model, tier = resolved
        unmet = reqs.unmet(model)
        if unmet is not None:
            raise _refusal(
                f"The model '{model.name}' chosen by x-router-route does not support {unmet[1]}.",
                unmet,
                reqs,
                (model,),
            )
        return Plan(
            route, reqs, eligible, model, tier, f"override x-router-route={ctx.route_override}"
        )

    for i, rule in enumerate(route.rules):
        if not _rule_matches(rule, reqs, ctx):
            continue
        resolved = _resolve_use(policy, route, rule.use)
        if resolved is not None and reqs.unmet(resolved[0]) is None:
            why = rule.reason or f"rule {i} ({rule.use})"
            return Plan(route, reqs, eligible, resolved[0], resolved[1], why)

    if len(eligible) == 1:
        only = eligible[0]
        model = policy.model(only.model)
        assert model is not None  # references are validated at load
        return Plan(route, reqs, eligible, model, only.name, f"only tier '{only.name}' is capable")
    return Plan(route, reqs, eligible, None, None, "")


def _refusal(
    message: str, unmet: tuple[str, str], reqs: Requirements, models: tuple[ModelSpec, ...]
) -> InvalidRequest:
    """A 400 for ``unmet``: ``context_length_exceeded`` when the context window is what failed."""
    if reqs.is_context(unmet):
        largest = max(models, key=lambda m: m.capabilities.context_window, default=None)
        limit = largest.capabilities.context_window if largest is not None else 0
        tokens = reqs.tokens_for(largest) if largest is not None else reqs.context_tokens
        about = "" if largest is not None and largest.name in reqs.exact_tokens else "about "
        return ContextLengthExceeded(
            f"{message} The request needs {about}{tokens} tokens (prompt plus "
            f"max_tokens); the largest context window here is {limit} tokens.",
            param=unmet[0],
            tokens=tokens,
            limit_tokens=limit,
        )
    return InvalidRequest(message, param=unmet[0])


def _eligible(policy: Policy, tier: Tier, reqs: Requirements) -> bool:
    model = policy.model(tier.model)
    return model is not None and reqs.unmet(model) is None


def _first_unmet(policy: Policy, route: Route, reqs: Requirements) -> tuple[str, str]:
    for tier in route.tiers:
        model = policy.model(tier.model)
        if model is not None:
            unmet = reqs.unmet(model)
            if unmet is not None:
                return unmet
    return "model", "this request"


def tier_for_score(score: float, thresholds: tuple[float, ...]) -> int:
    """Index of the tier for ``score``: the strongest whose threshold the score reaches.

    ``thresholds[i]`` is the minimum score of tier ``i`` (weakest first); the first is 0.
    """
    chosen = 0
    for i, t in enumerate(thresholds):
        if score >= t:
            chosen = i
    return chosen


def decide(
    policy: Policy,
    policy_hash: str,
    plan: Plan,
    score: float | None,
    thresholds: tuple[float, ...] | None = None,
) -> RouteDecision:
    """Finish a plan: pick the tier by score, then substitute an available model if needed.

    ``thresholds`` overrides the tiers' ``min_score`` (e.g. from a target strong share).
    """
    strongest = _strongest(policy, plan)
    if plan.pinned is not None:
        model, tier, reason = plan.pinned, plan.pinned_tier, plan.reason
    else:
        if score is None:
            raise ValueError("a score is needed to choose between tiers")
        ts = thresholds or tuple(t.min_score for t in plan.eligible)
        idx = tier_for_score(score, ts)
        chosen = plan.eligible[idx]
        found = policy.model(chosen.model)
        assert found is not None
        model, tier = found, chosen.name
        if idx + 1 < len(plan.eligible):
            reason = f"score {score:.2f} < {ts[idx + 1]:.2f} (tier {tier})"
        else:
            reason = f"score {score:.2f} >= {ts[idx]:.2f} (tier {tier})"
    fallbacks = tuple(
        fb
        for name in model.fallbacks
        if (fb := policy.model(name)) is not None and plan.requirements.unmet(fb) is None
    )
    fallback_reason = None
    if not model.available:
        usable = [fb for fb in fallbacks if fb.available]
        if not usable:
            raise ServiceUnavailable(
                f"Model '{model.name}' is unavailable ({model.missing_credential}) and has no "
                "available fallback.",
                code="model_unavailable",
            )
        fallback_reason = f"{model.name} unavailable: {model.missing_credential}"
        model = usable[0]
        fallbacks = tuple(usable[1:])
        reason += f"; {fallback_reason}, using {model.name}"
    else:
        fallbacks = tuple(fb for fb in fallbacks if fb.available)
    return RouteDecision(
        target=model,
        fallbacks=fallbacks,
        score=score,
        reason=reason,
        policy_hash=policy_hash,
        route=plan.route.alias if plan.route else None,
        tier=tier,
        fallback_reason=fallback_reason,
        strongest=strongest,
    )


def _strongest(policy: Policy, plan: Plan) -> ModelSpec | None:
    if plan.route is None:
        return plan.pinned
    tiers = plan.eligible or plan.route.tiers
    return policy.model(tiers[-1].model)


@dataclass(frozen=True, slots=True)
class KeepLocal:
    """Adjustment: only the models named in ``local`` may serve the request.

    The privacy guard's pin: hosted fallbacks are dropped, and a hosted target is refused with
    a 400 that says ``why`` (never the detected value).
    """

    local: frozenset[str]
    why: str


@dataclass(frozen=True, slots=True)
class Downgrade:
    """Adjustment: the route's local (first eligible) tier, without fallbacks.

    Budget admission's ``downgrade`` action: a budget-exhausted request must not reach a dearer
    model, so nothing falls back from the local tier.
    """


Adjustment = KeepLocal | Downgrade
"""The only ways a decision changes after :func:`decide` made it."""


def adjust(
    policy: Policy, policy_hash: str, plan: Plan, decision: RouteDecision, step: Adjustment
) -> RouteDecision | None:
    """``decision`` changed by ``step``; None when ``step`` cannot change it (a downgrade of a
    decision already on the local tier, or of a request without a route).

    Raises :class:`InvalidRequest` when ``KeepLocal`` finds a hosted target.
    """
    if isinstance(step, KeepLocal):
        return _keep_local(decision, step)
    route = plan.route
    if route is None:
        return None
    tier = (plan.eligible or route.tiers)[0]
    model = policy.model(tier.model)
    if model is None or model.name == decision.target.name:
        return None
    local_plan = replace(
        plan, pinned=model, pinned_tier=tier.name, reason=f"budget exhausted: tier '{tier.name}'"
    )
    return replace(decide(policy, policy_hash, local_plan, decision.score), fallbacks=())


def _keep_local(decision: RouteDecision, step: KeepLocal) -> RouteDecision:
    if decision.target.name not in step.local:
        raise InvalidRequest(
            f"This request must stay on local models ({step.why}), but the only "
            f"model that can serve it now is '{decision.target.name}', which is hosted"
            + (f" ({decision.fallback_reason})." if decision.fallback_reason else "."),
            param="model",
            code="privacy_pinned_local",
        )
    local = tuple(m for m in decision.fallbacks if m.name in step.local)
    if len(local) == len(decision.fallbacks):
        return decision
    return replace(decision, fallbacks=local)


def decide_cached(
    policy: Policy, policy_hash: str, plan: Plan, model_name: str, reason: str
) -> RouteDecision:
    """The decision reported for a cache hit: the model that answered originally.

    ``strongest`` is the route's strongest eligible tier, so the ledger's counterfactual shows
    what the hit saved.
    """
    target = policy.model(model_name) or plan.pinned
    if target is None:
        tier_model = policy.model(plan.eligible[0].model) if plan.eligible else None
        target = tier_model or policy.models[0]
    strongest = policy.model(plan.eligible[-1].model) if plan.eligible else target
    return RouteDecision(
        target=target,
        fallbacks=(),
        score=None,
        reason=reason,
        policy_hash=policy_hash,
        route=plan.route.alias if plan.route is not None else None,
        tier=None,
        strongest=strongest,
    )
