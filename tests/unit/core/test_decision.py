"""The decision rule: tiers by score, rules, overrides, capability gates, availability."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.context import RequestContext
from router.errors import InvalidRequest, NotFound, PermissionDenied, ServiceUnavailable
from router.policy.load import LoadedPolicy, load_policy
from router.protocol.chat_request import ChatRequest
from router.route.decision import decide, plan_request, tier_for_score
from tests.unit.core.policy_text import POLICY, write_policy


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedPolicy:
    return load_policy(write_policy(tmp_path), env={})


def req(**kw: object) -> ChatRequest:
    body: dict[str, object] = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return ChatRequest.model_validate(body)


def ctx(**kw: object) -> RequestContext:
    return RequestContext(request_id="r", **kw)  # type: ignore[arg-type]


def test_tier_for_score_picks_the_strongest_reached_threshold() -> None:
    ts = (0.0, 0.5, 0.8)
    assert [tier_for_score(s, ts) for s in (0.0, 0.49, 0.5, 0.79, 0.8, 1.0)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("score", "model", "tier"),
    [(0.1, "small", "local"), (0.6, "big", "mid"), (0.9, "backup", "hosted")],
)
def test_three_tiers_by_score(loaded: LoadedPolicy, score: float, model: str, tier: str) -> None:
    plan = plan_request(loaded.policy, req(), ctx())
    assert plan.needs_score
    d = decide(loaded.policy, loaded.hash, plan, score)
    assert (d.target.name, d.tier, d.score) == (model, tier, score)
    assert d.strongest is not None and d.strongest.name == "backup"
    assert d.policy_hash == loaded.hash
    assert f"{score:.2f}" in d.reason


def test_fallbacks_come_from_the_target(loaded: LoadedPolicy) -> None:
    d = decide(loaded.policy, loaded.hash, plan_request(loaded.policy, req(), ctx()), 0.1)
    assert [m.name for m in d.fallbacks] == ["big"]


def test_thresholds_can_be_overridden(loaded: LoadedPolicy) -> None:
    plan = plan_request(loaded.policy, req(), ctx())
    d = decide(loaded.policy, loaded.hash, plan, 0.3, thresholds=(0.0, 0.2, 0.9))
    assert d.target.name == "big"


def test_model_by_name_skips_the_classifier(loaded: LoadedPolicy) -> None:
    plan = plan_request(loaded.policy, req(model="big"), ctx())
    assert not plan.needs_score and plan.pinned is not None
    d = decide(loaded.policy, loaded.hash, plan, None)
    assert d.target.name == "big" and d.route is None and d.score is None


def test_unknown_model_is_404(loaded: LoadedPolicy) -> None:
    with pytest.raises(NotFound) as info:
        plan_request(loaded.policy, req(model="gpt-9"), ctx())
    assert info.value.param == "model"


def test_override_by_tier_and_by_model(loaded: LoadedPolicy) -> None:
    p = plan_request(loaded.policy, req(), ctx(route_override="hosted"))
    assert p.pinned is not None and p.pinned.name == "backup" and p.pinned_tier == "hosted"
    p = plan_request(loaded.policy, req(), ctx(route_override="big"))
    assert p.pinned is not None and p.pinned.name == "big"
    with pytest.raises(InvalidRequest) as info:
        plan_request(loaded.policy, req(), ctx(route_override="nowhere"))
    assert info.value.param == "x-router-route"


def test_override_refused_where_the_route_forbids_it(loaded: LoadedPolicy) -> None:
    with pytest.raises(PermissionDenied):
        plan_request(loaded.policy, req(model="locked"), ctx(route_override="local"))


def test_rules_by_hint_and_team(loaded: LoadedPolicy) -> None:
    p = plan_request(loaded.policy, req(), ctx(hint="quality"))
    assert p.pinned is not None and p.pinned.name == "backup" and not p.needs_score
    p = plan_request(loaded.policy, req(), ctx(team="research"))
    assert p.pinned is not None and p.pinned.name == "big"


def test_tools_gate_skips_tiers_that_cannot_call_tools(loaded: LoadedPolicy) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    plan = plan_request(loaded.policy, req(tools=tools), ctx())
    assert [t.name for t in plan.eligible] == ["mid", "hosted"]
    d = decide(loaded.policy, loaded.hash, plan, 0.0)
    assert d.target.name == "big"
    with pytest.raises(InvalidRequest) as info:
        plan_request(loaded.policy, req(model="small", tools=tools), ctx())
    assert info.value.param == "tools"


def test_context_gate_and_no_capable_model(loaded: LoadedPolicy) -> None:
    long = [{"role": "user", "content": "word " * 2000}]
    plan = plan_request(loaded.policy, req(messages=long), ctx())
    assert [t.name for t in plan.eligible] == ["mid", "hosted"]
    with pytest.raises(InvalidRequest) as info:
        plan_request(loaded.policy, req(model="locked", messages=long), ctx())
    assert info.value.param == "messages"
    # the code clients that trim and retry recognise (OpenAI's), still a 400
    assert info.value.code == "context_length_exceeded" and info.value.status == 400


def test_unavailable_target_uses_its_first_available_fallback(tmp_path: Path) -> None:
    path = write_policy(tmp_path, POLICY.replace("${BIG_KEY:-test-secret}", "${BIG_KEY}"))
    lp = load_policy(path, env={})
    d = decide(lp.policy, lp.hash, plan_request(lp.policy, req(), ctx()), 0.6)
    assert d.target.name == "backup"
    assert d.fallback_reason == "big unavailable: BIG_KEY is not set"
    assert "using backup" in d.reason


def test_unavailable_without_fallback_is_503(tmp_path: Path) -> None:
    policy = POLICY.replace("${BIG_KEY:-test-secret}", "${BIG_KEY}").replace(
        "    fallbacks: [backup]\n", ""
    )
    lp = load_policy(write_policy(tmp_path, policy), env={})
    with pytest.raises(ServiceUnavailable):
        decide(lp.policy, lp.hash, plan_request(lp.policy, req(model="big"), ctx()), None)
