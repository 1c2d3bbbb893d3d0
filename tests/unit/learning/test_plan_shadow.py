"""Which requests are shadowed: sampling, tiers, the privacy guard, request shapes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from router.context import RequestContext
from router.learning.promote import config_of
from router.learning.shadow import plan_shadow
from router.policy.schema import Policy
from router.protocol.chat_request import ChatRequest
from router.route.decision import decide, plan_request


def _policy(**learning: Any) -> Policy:
    return Policy.model_validate(
        {
            "models": [
                {"name": "small", "backend": "openai_compat", "endpoint": "http://x"},
                {"name": "big", "backend": "openai_compat", "endpoint": "http://x"},
                {"name": "judge", "backend": "openai_compat", "endpoint": "http://x"},
            ],
            "routes": [
                {
                    "alias": "auto",
                    "tiers": [
                        {"name": "local", "model": "small"},
                        {"name": "hosted", "model": "big", "min_score": 0.5},
                    ],
                }
            ],
            "learning": {"shadow_share": 0.5, **learning},
        }
    )


def _job(policy: Policy, score: float, draw: float = 0.1, guarded: bool = False, **body: Any):  # type: ignore[no-untyped-def]
    req = ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **body}
    )
    ctx = RequestContext(request_id="r1", tenant="t")
    plan = plan_request(policy, req, ctx)
    decision = decide(policy, "h", plan, score)
    return plan_shadow(
        policy, req, plan, decision, score, "head", "r1", "t", guarded, draw=lambda: draw
    )


def test_a_sampled_weak_answer_is_shadowed_by_the_strong_tier_and_judged_by_it() -> None:
    job = _job(_policy(), 0.2)
    assert job is not None
    assert (job.served.name, job.other.name, job.judge.name) == ("small", "big", "big")
    assert not job.served_is_strong


def test_a_strong_answer_is_shadowed_by_the_weak_tier_with_the_configured_judge() -> None:
    job = _job(_policy(judge="judge"), 0.9)
    assert job is not None
    assert (job.served.name, job.other.name, job.judge.name) == ("big", "small", "judge")
    assert job.served_is_strong


def test_sampling_and_switches() -> None:
    assert _job(_policy(), 0.2, draw=0.6) is None  # not sampled (share 0.5)
    assert _job(_policy(shadow_share=0.0), 0.2, draw=0.0) is None  # off
    assert _job(_policy(routes=("auto",)), 0.2) is not None


def test_privacy_guarded_requests_are_never_shadowed() -> None:
    assert _job(_policy(shadow_share=1.0), 0.2, draw=0.0, guarded=True) is None


def test_only_plain_text_requests_are_shadowed() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    assert _job(_policy(), 0.9, tools=tools) is None
    assert _job(_policy(), 0.2, n=2) is None
    assert _job(_policy(), 0.2, response_format={"type": "json_object"}) is None


def test_policy_checks_the_learning_section() -> None:
    with pytest.raises(ValidationError, match=r"learning\.judge"):
        _policy(judge="nope")
    with pytest.raises(ValidationError, match=r"learning\.routes"):
        _policy(routes=("nope",))
    with pytest.raises(ValidationError, match="shadow_sare"):
        _policy(shadow_sare=0.1)
    with pytest.raises(ValidationError):
        _policy(shadow_share=1.5)
    with pytest.raises(ValidationError, match="require_sure_lead"):
        _policy(require_sure_lead="maybe")
    default = Policy.model_validate({"models": [{"name": "m", "backend": "local"}]})
    assert default.learning.shadow_share == 0 and not default.learning.background
    assert not default.learning.require_sure_lead and not config_of(default).sure_lead
    assert config_of(_policy(require_sure_lead=True)).sure_lead
