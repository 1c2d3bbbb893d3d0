"""Retries, then fallbacks in order; non-retryable errors stop at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.backends.calls import Attempts, complete_with_fallbacks, open_stream_with_fallbacks
from router.backends.scripted import ScriptedBackend
from router.context import RequestContext
from router.errors import (
    UpstreamBadRequest,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from router.policy.load import LoadedPolicy, load_policy
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.route.decision import RouteDecision, decide, plan_request
from tests.unit.core.policy_text import write_policy


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedPolicy:
    return load_policy(write_policy(tmp_path), env={})


def decision(lp: LoadedPolicy, model: str) -> RouteDecision:
    r = ChatRequest.model_validate({"model": model, "messages": [{"role": "user", "content": "x"}]})
    return decide(lp.policy, lp.hash, plan_request(lp.policy, r, RequestContext("r")), None)


def request(stream: bool = False) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "small", "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    )


async def test_retry_then_success_on_the_same_model(loaded: LoadedPolicy) -> None:
    b = ScriptedBackend(errors={"small": [UpstreamServerError("boom", model="small")]})
    att = Attempts()
    out = await complete_with_fallbacks(
        request(), decision(loaded, "small"), loaded.policy, lambda m: b, att
    )
    assert out.model == "small" and [c[0] for c in b.calls] == ["small", "small"]
    assert att.failures == [("small", "upstream_server_error")] and not att.fell_back


async def test_retries_exhausted_then_fallback(loaded: LoadedPolicy) -> None:
    b = ScriptedBackend(errors={"small": [UpstreamRateLimited("429", model="small")] * 2})
    att = Attempts()
    out = await complete_with_fallbacks(
        request(), decision(loaded, "small"), loaded.policy, lambda m: b, att
    )
    assert out.model == "big" and [c[0] for c in b.calls] == ["small", "small", "big"]
    assert att.fell_back and att.model is not None and att.model.name == "big"


async def test_all_fail_raises_the_last_error(loaded: LoadedPolicy) -> None:
    b = ScriptedBackend(
        errors={
            "big": [UpstreamTimeout("t", model="big")] * 2,
            "backup": [UpstreamServerError("s", model="backup")] * 2,
        }
    )
    with pytest.raises(UpstreamServerError):
        await complete_with_fallbacks(
            request(), decision(loaded, "big"), loaded.policy, lambda m: b, Attempts()
        )
    assert [c[0] for c in b.calls] == ["big", "big", "backup", "backup"]


async def test_bad_request_is_neither_retried_nor_failed_over(loaded: LoadedPolicy) -> None:
    b = ScriptedBackend(errors={"small": [UpstreamBadRequest("bad", model="small")]})
    with pytest.raises(UpstreamBadRequest):
        await complete_with_fallbacks(
            request(), decision(loaded, "small"), loaded.policy, lambda m: b, Attempts()
        )
    assert len(b.calls) == 1


async def test_stream_falls_back_before_the_first_chunk(loaded: LoadedPolicy) -> None:
    b = ScriptedBackend(errors={"small": [UpstreamServerError("x", model="small")] * 2})
    att = Attempts()
    first, rest = await open_stream_with_fallbacks(
        request(stream=True), decision(loaded, "small"), loaded.policy, lambda m: b, att
    )
    chunks = [first] + [c async for c in rest]
    assert chunks[0].data["model"] == "big"
    assert chunks[-1].usage is not None
    assert att.model is not None and att.model.name == "big"


def test_model_spec_wire_name() -> None:
    m = ModelSpec(name="a", backend="openai_compat", upstream_model="b")
    assert m.wire_model == "b"
