"""The guard stage on its own: scopes, strictest-wins, pinning, constraining, cache scoping."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from router.cache.canonical import canonicalize
from router.context import RequestContext
from router.errors import InvalidRequest
from router.guard.stage import effective, guard_request, is_local
from router.policy.schema import Policy
from router.policy.sections.cache import CacheSettings
from router.policy.sections.guard import GuardScope, GuardSettings
from router.protocol.chat_request import ChatRequest
from router.route.decision import decide, plan_request

EMAIL = "jane.roe@example.com"


def _policy(guard: GuardSettings) -> Policy:
    return Policy.model_validate(
        {
            "models": [
                {"name": "small", "backend": "openai_compat", "tier": "local"},
                {"name": "big", "backend": "openai_compat", "tier": "hosted"},
                {"name": "inproc", "backend": "local"},
            ],
            "routes": [
                {
                    "alias": "auto",
                    "tiers": [
                        {"name": "local", "model": "small"},
                        {"name": "hosted", "model": "big", "min_score": 0.5},
                    ],
                },
                {
                    "alias": "two-local",
                    "tiers": [
                        {"name": "a", "model": "small"},
                        {"name": "b", "model": "inproc", "min_score": 0.3},
                        {"name": "c", "model": "big", "min_score": 0.7},
                    ],
                },
            ],
            "guard": guard.model_dump(),
        }
    )


def _req(text: str, model: str = "auto") -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    req = ChatRequest.model_validate(body)
    req._raw = body
    return req


def test_settings_are_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        GuardSettings.model_validate({"pii": "maybe"})
    with pytest.raises(ValidationError):
        GuardSettings.model_validate({"pii_kinds": {"shoe_size": "block"}})
    with pytest.raises(ValidationError):
        GuardSettings.model_validate({"teams": {"x": {"unknown": 1}}})
    s = GuardSettings()
    assert not s.enabled
    with pytest.raises(ValidationError):
        s.pii = "block"  # type: ignore[misc]


def test_strictest_of_default_route_and_team_wins() -> None:
    s = GuardSettings(
        pii="redact",
        pii_kinds={"secret": "block"},
        routes={"auto": GuardScope(pii="off", output="secrets")},  # cannot loosen
        teams={"hr": GuardScope(pii="pin-local", injection="flag", always_local=True)},
    )
    eff = effective(s, "auto", None)
    assert eff.pii["email"] == "redact" and eff.pii["secret"] == "block"
    assert eff.output == "secrets" and eff.injection == "off" and not eff.always_local
    hr = effective(s, "other", "hr")
    assert hr.pii["email"] == "pin-local" and hr.pii["secret"] == "block"
    assert hr.injection == "flag" and hr.always_local and hr.output == "off"


def test_guard_off_returns_none() -> None:
    policy = _policy(GuardSettings())
    req = _req(f"hi {EMAIL}")
    assert (
        guard_request(
            policy, req, plan_request(policy, req, RequestContext("r")), RequestContext("r")
        )
        is None
    )


def test_team_scope_pins_local_and_narrows_the_plan() -> None:
    policy = _policy(GuardSettings(teams={"hr": GuardScope(pii="pin-local")}))
    req = _req(f"hi {EMAIL}", model="two-local")
    ctx = RequestContext("r", team="hr")
    plan = plan_request(policy, req, ctx)
    guard = guard_request(policy, req, plan, ctx)
    assert guard is not None and guard.pinned_local
    assert [t.name for t in guard.plan.eligible] == ["a", "b"]  # the hosted tier is gone
    assert guard.plan.needs_score
    decision = guard.constrain(decide(policy, "h", guard.plan, 0.99))
    assert decision.target.name == "inproc"
    other = guard_request(policy, req, plan, RequestContext("r", team="eng"))
    assert other is not None and not other.pinned_local  # another team: untouched


def test_constrain_drops_hosted_fallbacks_and_refuses_hosted_targets() -> None:
    policy = _policy(GuardSettings(pii="pin-local"))
    req = _req(f"hi {EMAIL}")
    ctx = RequestContext("r")
    guard = guard_request(policy, req, plan_request(policy, req, ctx), ctx)
    assert guard is not None
    big, small = policy.model("big"), policy.model("small")
    assert big is not None and small is not None
    d = decide(policy, "h", guard.plan, None)
    widened = dataclasses.replace(d, fallbacks=(big,))
    assert guard.constrain(widened).fallbacks == ()
    with pytest.raises(InvalidRequest) as exc:
        guard.constrain(dataclasses.replace(d, target=big))
    assert exc.value.code == "privacy_pinned_local" and EMAIL not in exc.value.message


def test_is_local_rules() -> None:
    s = GuardSettings(local_models=("big",))
    policy = _policy(s)
    assert all(is_local(m, s) for m in policy.models)
    assert not is_local(policy.models[1], GuardSettings())


def test_block_message_names_kind_and_place_not_value() -> None:
    policy = _policy(GuardSettings(pii="block"))
    req = _req(f"hi {EMAIL}")
    ctx = RequestContext("r")
    with pytest.raises(InvalidRequest) as exc:
        guard_request(policy, req, plan_request(policy, req, ctx), ctx)
    assert exc.value.param == "messages[0].content"
    assert "an email address" in exc.value.message and EMAIL not in exc.value.message


def test_injection_classifier_slot() -> None:
    class Always:
        def score(self, text: str) -> float:
            return 1.0

    policy = _policy(GuardSettings(injection="block"))
    req = _req("a perfectly ordinary sentence")
    ctx = RequestContext("r")
    plan = plan_request(policy, req, ctx)
    assert guard_request(policy, req, plan, ctx) is not None
    with pytest.raises(InvalidRequest) as exc:
        guard_request(policy, req, plan, ctx, classifier=Always())
    assert exc.value.code == "prompt_injection"


def test_cache_scoping_separates_guard_treatments() -> None:
    """A redacted request never shares a cache entry with an unguarded one, nor with a request
    that differs only in its PII; and no semantic lookup is allowed once PII was found."""
    ctx = RequestContext("r")
    redact = _policy(GuardSettings(pii="redact"))
    pinned = _policy(GuardSettings(pii="pin-local"))
    a, b = _req(f"write to {EMAIL}"), _req("write to john.smith@example.org")
    ga = guard_request(redact, a, plan_request(redact, a, ctx), ctx)
    gb = guard_request(redact, b, plan_request(redact, b, ctx), ctx)
    gp = guard_request(pinned, a, plan_request(pinned, a, ctx), ctx)
    assert ga is not None and gb is not None and gp is not None
    assert not ga.semantic_cache_ok
    plain = canonicalize(a, "t")
    red_a = canonicalize(a, "t", ga.cache_namespace())
    red_b = canonicalize(b, "t", gb.cache_namespace())
    pin_a = canonicalize(a, "t", gp.cache_namespace())
    assert len({plain.digest, red_a.digest, red_b.digest, pin_a.digest}) == 4
    base = CacheSettings()
    tuned = ga.cache_settings(base)
    assert tuned.namespace == ga.cache_namespace(base.namespace) and not tuned.semantic
    CacheSettings.model_validate(tuned.model_dump())  # still a valid namespace
    clean = _req("no personal data here")
    gc = guard_request(redact, clean, plan_request(redact, clean, ctx), ctx)
    assert gc is not None and gc.semantic_cache_ok and gc.cache_settings(base).semantic


def test_docs_examples_are_valid_policy_sections() -> None:
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parents[3] / "docs" / "privacy.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        settings = GuardSettings.model_validate(yaml.safe_load(block)["guard"])
        assert settings.enabled
