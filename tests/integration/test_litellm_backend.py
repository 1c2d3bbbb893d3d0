"""The litellm backend against the mock upstream (litellm's OpenAI provider, real HTTP)."""

from __future__ import annotations

import pytest

from router.backends.base import Target
from router.backends.litellm_backend import LiteLLMBackend
from router.errors import UpstreamBadRequest, UpstreamRateLimited, UpstreamServerError
from router.policy.schema import Defaults, ModelSpec, Policy, Price, RetryPolicy
from router.protocol.chat_request import ChatRequest
from router.testing.mock_config import MockConfig
from router.testing.mock_process import running_mock

pytestmark = pytest.mark.integration


def policy_for(url: str, upstream: str = "openai/mock-hosted") -> tuple[Policy, ModelSpec]:
    model = ModelSpec(
        name="via-litellm",
        backend="litellm",
        upstream_model=upstream,
        endpoint=url,
        api_key="sk-test",
        price=Price(input_usd_per_mtok=1, output_usd_per_mtok=2),
    )
    return Policy(models=(model,), defaults=Defaults(retry=RetryPolicy(attempts=1))), model


def request(stream: bool = False) -> ChatRequest:
    return ChatRequest.model_validate(
        {
            "model": "via-litellm",
            "stream": stream,
            "max_tokens": 20,
            "messages": [{"role": "user", "content": "hello there"}],
        }
    )


async def test_complete_and_stream_with_usage() -> None:
    backend = LiteLLMBackend()
    async with running_mock(MockConfig()) as url:
        policy, model = policy_for(url)
        out = await backend.complete(request(), Target.of(policy, model))
        assert out.body["choices"][0]["message"]["content"].startswith("Mock reply")
        assert out.usage is not None and out.usage.prompt_tokens > 0
        chunks = [c async for c in backend.stream(request(stream=True), Target.of(policy, model))]
        text = "".join(
            (c.data["choices"][0]["delta"].get("content") or "")
            for c in chunks
            if c.data.get("choices")
        )
        assert text.startswith("Mock reply")
        usage = [c.usage for c in chunks if c.usage is not None]
        assert usage and usage[-1].completion_tokens == out.usage.completion_tokens


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, UpstreamRateLimited), (500, UpstreamServerError), (400, UpstreamBadRequest)],
)
async def test_errors_are_translated(status: int, error: type[Exception]) -> None:
    backend = LiteLLMBackend()
    async with running_mock(MockConfig(fail_status=status)) as url:
        policy, model = policy_for(url)
        with pytest.raises(error):
            await backend.complete(request(), Target.of(policy, model))
