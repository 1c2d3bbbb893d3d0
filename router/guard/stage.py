"""Stage 2 of the request path: scan the request, then block it, pin it local, or redact it.

:func:`guard_request` runs right after the plan (the route and its capable tiers are known) and
before the classifier. It returns None when the policy's guard is off (the pipeline then pays
nothing), otherwise a :class:`GuardVerdict`, an immutable value that the pipeline consumes:

* ``verdict.plan``: the plan, narrowed to the route's local tiers when the request is pinned;
* ``verdict.keep_local``: the :class:`~router.route.decision.KeepLocal` adjustment of the
  decision (hosted fallbacks removed, 400 if the target itself is hosted), None when not pinned;
* :func:`router.guard.backend.guarded`: backends that redact for hosted targets and rewrite
  their answers; ``verdict.response_headers(called)`` says what the response tells the client.

Cache: a guarded request must be cached with ``guard.cache_settings(policy.cache)``: its own
namespace, and no semantic lookup once PII was found (two prompts that differ only in a name or
an account number are "similar", and one must never get the other's answer).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

import structlog

from router.context import RequestContext
from router.errors import InvalidRequest
from router.guard.injection import InjectionClassifier, InjectionReport, assess
from router.guard.pii import KIND_NAMES, Finding, find_pii
from router.guard.redact import message_texts
from router.policy.schema import ModelSpec, Policy
from router.policy.sections.cache import CacheSettings
from router.policy.sections.guard import (
    INJECTION_ORDER,
    OUTPUT_ORDER,
    PII_ORDER,
    GuardScope,
    GuardSettings,
    InjectionAction,
    OutputMask,
    PiiAction,
    PiiKind,
    stricter,
)
from router.protocol.chat_request import ChatRequest
from router.route.decision import KeepLocal, Plan, RouteDecision, adjust

log = structlog.get_logger("router.guard")

PRIVACY_HEADER = "x-router-privacy"
PII_HEADER = "x-router-pii"
INJECTION_HEADER = "x-router-injection"


@dataclass(frozen=True, slots=True)
class Effective:
    """The guard settings in force for one request (default, route and team combined)."""

    pii: dict[PiiKind, PiiAction]
    injection: InjectionAction
    output: OutputMask
    always_local: bool


def effective(settings: GuardSettings, route: str | None, team: str | None) -> Effective:
    """Combine the policy default with the route's and the team's scopes: strictest wins."""
    scopes: list[GuardScope | GuardSettings] = [settings]
    if route is not None and route in settings.routes:
        scopes.append(settings.routes[route])
    if team is not None and team in settings.teams:
        scopes.append(settings.teams[team])
    pii = {
        kind: stricter(PII_ORDER, *(a for s in scopes for a in (s.pii, s.pii_kinds.get(kind))))
        for kind in settings.detect
    }
    return Effective(
        pii=pii,
        injection=stricter(INJECTION_ORDER, *(s.injection for s in scopes)),
        output=stricter(OUTPUT_ORDER, *(s.output for s in scopes)),
        always_local=any(bool(s.always_local) for s in scopes),
    )


@dataclass(frozen=True, slots=True)
class Located:
    """Findings in one text of the request, e.g. ``messages[2].content``."""

    where: str
    findings: tuple[Finding, ...]


def scan(req: ChatRequest, kinds: Iterable[PiiKind], roles: Iterable[str]) -> list[Located]:
    """Every PII finding of ``kinds`` in the messages of ``roles`` and the ``user`` field."""
    kinds, roles = tuple(kinds), frozenset(roles)
    if not kinds:
        return []
    raw = req.raw_body()
    out: list[Located] = []
    for i, msg in enumerate(raw.get("messages") or ()):
        if not isinstance(msg, dict) or msg.get("role") not in roles:
            continue
        for where, text in message_texts(msg):
            found = find_pii(text, kinds)
            if found:
                out.append(Located(f"messages[{i}].{where}", tuple(found)))
    user = raw.get("user")
    if isinstance(user, str):
        found = find_pii(user, kinds)
        if found:
            out.append(Located("user", tuple(found)))
    return out


def is_local(model: ModelSpec, settings: GuardSettings) -> bool:
    """Whether ``model`` runs on the premises: the in-process backends (``local``, and the
    ``encoder`` embedding model), a local tier label, or listed in ``guard.local_models``."""
    return (
        model.backend in ("local", "encoder")
        or (model.tier is not None and model.tier in settings.local_tier_labels)
        or model.name in settings.local_models
    )


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """What the guard decided for one request."""

    settings: GuardSettings
    policy: Policy
    plan: Plan
    """The plan to decide from: narrowed to local tiers when the request is pinned."""
    eff: Effective
    action: PiiAction
    """The PII action in force (the strictest over the kinds found)."""
    found: tuple[PiiKind, ...]
    pinned_local: bool
    injection: InjectionReport | None
    headers: Mapping[str, str] = field(default_factory=dict)
    """What the response tells the client whatever model answers (PII kinds, injection, pin)."""
    keep_local: KeepLocal | None = None
    """The decision's adjustment when the request is pinned to local models."""

    @property
    def semantic_cache_ok(self) -> bool:
        """False when PII was found: only an exact (same values) cache hit is safe."""
        return not self.found

    @property
    def shadowable(self) -> bool:
        """Whether the request may be shadowed (never when pinned local or PII was found)."""
        return not (self.pinned_local or self.found)

    def cache_namespace(self, base: str = "v1") -> str:
        """A cache namespace (derived from ``base``) that separates answers made under
        different guard treatments: redacted, pinned local, masked, or untouched."""
        mark = f"{base}|{self.action}|{self.eff.output}|{self.pinned_local}|{','.join(self.found)}"
        return "g-" + hashlib.blake2b(mark.encode(), digest_size=8).hexdigest()

    def cache_settings(self, settings: CacheSettings) -> CacheSettings:
        """The policy's cache settings for this request: the guard's namespace, and no semantic
        lookup or store once PII was found. The cache must canonicalise the request as the client
        sent it (never the redacted copy), so that only identical values share an entry."""
        return settings.model_copy(
            update={
                "namespace": self.cache_namespace(settings.namespace),
                "semantic": settings.semantic and self.semantic_cache_ok,
            }
        )

    def constrain(self, decision: RouteDecision) -> RouteDecision:
        """``decision`` with :attr:`keep_local` applied (unchanged when not pinned)."""
        if self.keep_local is None:
            return decision
        adjusted = adjust(self.policy, "", self.plan, decision, self.keep_local)
        return decision if adjusted is None else adjusted

    @property
    def redacts(self) -> bool:
        """Whether hosted targets get a redacted copy of the request."""
        return self.action == "redact"

    def response_headers(self, called: tuple[ModelSpec, ...]) -> dict[str, str]:
        """The guard's response headers once the ``called`` models were tried: its own, and
        ``x-router-privacy: redacted`` when a hosted one got the redacted copy."""
        headers = dict(self.headers)
        if self.redacts and any(not is_local(m, self.settings) for m in called):
            headers[PRIVACY_HEADER] = "redacted"
        return headers

    def pin_reason(self) -> str:
        """Why the request must stay on local models (names kinds, never values)."""
        if self.found and self.action == "pin-local":
            return "it contains " + _join([KIND_NAMES[k] for k in self.found])
        if self.injection is not None and self.injection.flagged:
            return "it looks like a prompt injection"
        return "the privacy policy keeps this route or team on local models"


def _pin_plan(guard: GuardVerdict) -> Plan:
    """The plan narrowed to local models; 400 when none can serve the request."""
    plan, settings, policy = guard.plan, guard.settings, guard.policy
    why = guard.pin_reason()
    if plan.pinned is not None and is_local(plan.pinned, settings):
        return dataclasses.replace(plan, reason=f"{plan.reason}; kept local: {why}")
    if plan.route is None:
        name = plan.pinned.name if plan.pinned is not None else "?"
        raise InvalidRequest(
            f"The model '{name}' is hosted, and this request must stay on local models "
            f"({why}). Ask for a route or a local model instead.",
            param="model",
            code="privacy_pinned_local",
        )
    tiers = []
    for tier in plan.eligible:
        model = policy.model(tier.model)
        if model is not None and is_local(model, settings):
            tiers.append((tier, model))
    if not tiers:
        raise InvalidRequest(
            f"This request must stay on local models ({why}), but no local model behind "
            f"route '{plan.route.alias}' can serve it.",
            param="model",
            code="privacy_pinned_local",
        )
    reason = f"pinned local: {why}"
    if len(tiers) == 1:
        tier, model = tiers[0]
        return dataclasses.replace(plan, pinned=model, pinned_tier=tier.name, reason=reason)
    return dataclasses.replace(
        plan, eligible=tuple(t for t, _ in tiers), pinned=None, pinned_tier=None, reason=reason
    )


def refuse_blocked(
    located: list[Located], action_of: dict[PiiKind, PiiAction], scope: str
) -> NoReturn:
    """Raise the 400 (``pii_blocked``) naming the blocked kinds and where they are, never the
    values; ``scope`` says which route or team scope blocks (empty: the policy default)."""
    blocked = [(loc, f) for loc in located for f in loc.findings if action_of[f.kind] == "block"]
    kinds: list[str] = []
    places: list[str] = []
    for loc, f in blocked:
        if KIND_NAMES[f.kind] not in kinds:
            kinds.append(KIND_NAMES[f.kind])
        if loc.where not in places:
            places.append(loc.where)
    raise InvalidRequest(
        f"The request contains {_join(kinds)} (in {_join(places)}); the privacy policy "
        f"{scope}blocks it. Remove the value and retry.",
        param=places[0],
        code="pii_blocked",
    )


def guard_request(
    policy: Policy,
    req: ChatRequest,
    plan: Plan,
    ctx: RequestContext,
    classifier: InjectionClassifier | None = None,
) -> GuardVerdict | None:
    """Apply the policy's guard to a planned request (see the module docstring).

    Raises :class:`InvalidRequest` (400) when the request is blocked, or pinned local and no
    local model can serve it. Never echoes a detected value.
    """
    settings = policy.guard
    if not settings.enabled:
        return None
    route = plan.route.alias if plan.route is not None else req.model
    eff = effective(settings, route, ctx.team)
    scan_kinds = [k for k, a in eff.pii.items() if a != "off"]
    located = scan(req, scan_kinds, settings.scan_roles)
    found = tuple(sorted({f.kind for loc in located for f in loc.findings}))
    action = stricter(PII_ORDER, *(eff.pii[k] for k in found))
    scope = f"for route '{route}' " if route in settings.routes else ""
    if ctx.team is not None and ctx.team in settings.teams:
        scope += f"for team '{ctx.team}' "
    if action == "block":
        refuse_blocked(located, eff.pii, scope)

    report = None
    if eff.injection != "off":
        texts = (
            t
            for m in req.raw_body().get("messages") or ()
            if isinstance(m, dict) and m.get("role") in settings.injection_roles
            for _, t in message_texts(m)
        )
        report = assess(texts, settings.injection_threshold, classifier)
        if report.flagged and eff.injection == "block":
            raise InvalidRequest(
                "The request looks like a prompt-injection attempt "
                f"({', '.join(report.signals)}); the policy {scope}blocks it.",
                param="messages",
                code="prompt_injection",
            )

    injected = report is not None and report.flagged
    pinned = (
        action == "pin-local" or eff.always_local or (injected and eff.injection == "pin-local")
    )
    headers: dict[str, str] = {}
    if found:
        headers[PII_HEADER] = ",".join(found)
    if injected and report is not None:
        headers[INJECTION_HEADER] = f"flagged; score={report.score:.2f}"
    if pinned:
        headers[PRIVACY_HEADER] = "pinned-local"
    guard = GuardVerdict(settings, policy, plan, eff, action, found, pinned, report, headers)
    if pinned:
        local = frozenset(m.name for m in policy.models if is_local(m, settings))
        guard = dataclasses.replace(
            guard, plan=_pin_plan(guard), keep_local=KeepLocal(local, guard.pin_reason())
        )
    if found or injected:
        log.info(
            "guard",
            request_id=ctx.request_id,
            pii=list(found),
            action=action,
            pinned_local=pinned,
            injection_score=None if report is None else round(report.score, 3),
            injection_signals=None if report is None else list(report.signals),
        )
    return guard
