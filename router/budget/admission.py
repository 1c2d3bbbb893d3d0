"""Stage 8 of the request path: key permissions, rate limits and the budget reservation.

:func:`admit` gathers the scopes that apply to a request (the virtual key's budget and limits,
its team's, the global budget), reserves the worst-case cost of the routed target and its
fallbacks in one Redis round trip, and, when a budget is exhausted and the policy says
``downgrade``, re-decides the request to its route's local (first) tier and reserves that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import httpx
import orjson
import structlog

from router.budget.estimate import input_tokens_upper_bound, worst_case_tokens, worst_case_usd
from router.budget.ratelimit import LimitScope
from router.budget.reserve import Budgets, BudgetScope, Reservation
from router.context import RequestContext
from router.errors import BudgetExceeded, PermissionDenied
from router.keys.model import VirtualKey
from router.keys.store import KeyNotFound, RedisKeyStore
from router.policy.load import LoadedPolicy
from router.policy.sections.budgets import BudgetSettings
from router.protocol.chat_request import ChatRequest
from router.redis.keys import scope_name
from router.route.decision import Downgrade, Plan, RouteDecision, adjust

log = structlog.get_logger("router.budget")
NO_HEADERS: Mapping[str, str] = MappingProxyType({})
"""An admission that adds no header (read-only, so one instance serves every request)."""
MASTER_KEY_ID = "master"
"""The key id :class:`router.auth.Authenticator` gives the master key (no virtual key)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """What stage 8 decided for one request."""

    decision: RouteDecision
    """The routing decision to call: the one admitted, or its budget downgrade."""
    hold: Reservation | None = None
    """The reservation to settle when the request is recorded (None: nothing held)."""
    headers: Mapping[str, str] = field(default_factory=lambda: NO_HEADERS)
    """Response headers: rate-limit state, and ``x-router-budget`` on a downgrade."""


def scopes_for(
    settings: BudgetSettings, key: VirtualKey | None, team: str | None
) -> tuple[tuple[BudgetScope, ...], tuple[LimitScope, ...]]:
    """The budget scopes and rate-limit scopes of a request by ``key`` of ``team``."""
    scopes: list[BudgetScope] = []
    limits: list[LimitScope] = []
    if key is not None:
        ks = scope_name("k", key.id)
        if key.budget_usd is not None:
            scopes.append(BudgetScope(ks, f"key {key.id}", key.budget_usd, key.window))
        if key.rpm or key.tpm:
            limits.append(LimitScope(ks, f"key {key.id}", key.rpm, key.tpm))
    tb = settings.teams.get(team) if team else None
    if tb is not None and team:
        ts = scope_name("t", team)
        if tb.limit_usd is not None:
            scopes.append(BudgetScope(ts, f"team {team}", tb.limit_usd, tb.window))
        if tb.rpm or tb.tpm:
            limits.append(LimitScope(ts, f"team {team}", tb.rpm, tb.tpm))
    if settings.global_ is not None:
        g = settings.global_
        scopes.append(BudgetScope(scope_name("g"), "global", g.limit_usd, g.window))
    return tuple(scopes), tuple(limits)


def hold_meta(ctx: RequestContext, decision: RouteDecision, policy_hash: str, stream: bool) -> str:
    """What a ``reclaimed`` ledger row needs to know of the request (JSON, no tabs)."""
    meta = {
        "request_id": ctx.request_id,
        "ts": round(time.time() - (time.perf_counter() - ctx.started_at), 3),
        "tenant": ctx.tenant,
        "key_id": ctx.key_id,
        "team": ctx.team,
        "route": decision.route,
        "tier": decision.tier,
        "model": decision.target.name,
        "policy_hash": policy_hash,
        "stream": stream,
    }
    return orjson.dumps(meta).decode()


async def _reserve_for(
    budgets: Budgets,
    settings: BudgetSettings,
    scopes: tuple[BudgetScope, ...],
    limits: tuple[LimitScope, ...],
    req: ChatRequest,
    decision: RouteDecision,
    meta: str = "-",
) -> Reservation | None:
    models = (decision.target, *decision.fallbacks)
    upper = input_tokens_upper_bound(req)
    amount = worst_case_usd(req, models, upper)
    tokens = worst_case_tokens(req, models, upper)
    return await budgets.reserve(settings, scopes, limits, amount, tokens, meta)


Spawn = Callable[[Coroutine[Any, Any, None]], None]


async def admit(
    budgets: Budgets,
    key: VirtualKey | None,
    loaded: LoadedPolicy,
    req: ChatRequest,
    plan: Plan,
    decision: RouteDecision,
    ctx: RequestContext,
    *,
    spawn: Spawn | None = None,
) -> Admission:
    """Check the key's model list, rate limits and budgets; hold the worst-case cost.

    Raises :class:`PermissionDenied`, :class:`RateLimited`, :class:`BudgetExceeded` or
    :class:`ServiceUnavailable`; the admitted decision is ``decision`` or, when the policy
    says ``downgrade`` and the budget is exhausted, its local tier.
    """
    check_models(key, req)
    settings = loaded.policy.budgets
    scopes, limits = scopes_for(settings, key, ctx.team)
    if not scopes and not limits:
        return Admission(decision)
    headers: dict[str, str] = {}
    try:
        meta = hold_meta(ctx, decision, loaded.hash, req.stream)
        hold = await _reserve_for(budgets, settings, scopes, limits, req, decision, meta)
    except BudgetExceeded:
        local = None
        if settings.action == "downgrade":
            local = adjust(loaded.policy, loaded.hash, plan, decision, Downgrade())
        if local is None:
            raise
        meta = hold_meta(ctx, local, loaded.hash, req.stream)
        hold = await _reserve_for(budgets, settings, scopes, limits, req, local, meta)
        decision = local
        headers["x-router-budget"] = "downgraded"
        log.info("budget_downgrade", request_id=ctx.request_id, model=local.target.name)
    if hold is None:
        return Admission(decision, None, headers)
    headers.update(hold.headers)
    for scope in hold.alerts:
        budgets.soft_alerts += 1
        alert_soft_limit(settings, scope, ctx.request_id, spawn)
    return Admission(decision, hold, headers)


async def admit_cache_hit(
    budgets: Budgets,
    keys: RedisKeyStore | None,
    loaded: LoadedPolicy,
    decision: RouteDecision,
    ctx: RequestContext,
) -> Admission:
    """Count a request the cache answers against its request-rate limits (``rpm``).

    A hit costs nothing and uses no upstream tokens, so no budget is held and ``tpm`` is not
    charged; but a key limited to N requests a minute gets N, cached or not. Raises
    :class:`RateLimited` (or :class:`ServiceUnavailable` when the store is down, fail-closed).
    """
    key = await _key_of(keys, ctx)
    settings = loaded.policy.budgets
    _, limits = scopes_for(settings, key, ctx.team)
    limits = tuple(lim for lim in limits if lim.rpm)
    if not limits:
        return Admission(decision)
    hold = await budgets.reserve(settings, (), limits, 0.0, 0)
    return Admission(decision, hold, hold.headers if hold is not None else NO_HEADERS)


def check_models(key: VirtualKey | None, req: ChatRequest) -> None:
    """Raise :class:`PermissionDenied` unless ``key`` may request ``req.model`` (a model name
    or a route alias; allowing a route allows every model behind it)."""
    if key is not None and not key.allows(req.model):
        raise PermissionDenied(
            f"Key {key.id} may not use '{req.model}'; allowed: {', '.join(key.models)}.",
            param="model",
            code="model_not_allowed",
        )


def check_request(keys: RedisKeyStore | None, req: ChatRequest, ctx: RequestContext) -> None:
    """The pipeline's first check (before the cache can answer): the key's model list."""
    if keys is not None and ctx.key_id is not None:
        check_models(keys.cached(ctx.key_id), req)


async def _key_of(store: RedisKeyStore | None, ctx: RequestContext) -> VirtualKey | None:
    """The virtual key of the request: as authenticated (cached), else read again."""
    if store is None or ctx.key_id is None or ctx.key_id == MASTER_KEY_ID:
        return None
    key = store.cached(ctx.key_id)
    if key is None:  # the lookup cache was reset since authentication
        with contextlib.suppress(KeyNotFound):
            key = await store.get(ctx.key_id)
    return key


async def admit_request(
    budgets: Budgets,
    keys: RedisKeyStore | None,
    loaded: LoadedPolicy,
    req: ChatRequest,
    plan: Plan,
    decision: RouteDecision,
    ctx: RequestContext,
    spawn: Spawn | None,
) -> Admission:
    """:func:`admit` for the request's virtual key, looked up in ``keys`` (stage 8)."""
    key = await _key_of(keys, ctx)
    return await admit(budgets, key, loaded, req, plan, decision, ctx, spawn=spawn)


def alert_soft_limit(
    settings: BudgetSettings,
    scope: BudgetScope,
    request_id: str,
    spawn: Spawn | None,
) -> None:
    """Announce that ``scope`` crossed the soft limit: a log line and, if set, a webhook."""
    pct = settings.soft_limit_percent
    log.warning(
        "budget_soft_limit",
        scope=scope.label,
        limit_usd=scope.limit_usd,
        window=scope.window,
        percent=pct,
        request_id=request_id,
    )
    url = settings.webhook_url
    if url and spawn is not None:
        body = {
            "event": "budget.soft_limit",
            "scope": scope.label,
            "limit_usd": scope.limit_usd,
            "window": scope.window,
            "percent": pct,
        }
        spawn(_post(url, body))


async def _post(url: str, body: dict[str, Any]) -> None:
    """POST one alert (a short-lived client: alerts come at most once per scope and window)."""
    try:
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            await client.post(url, json=body)
    except Exception as exc:  # an alert must never fail anything
        log.warning("budget_webhook_failed", url=url, error=repr(exc))
