"""The local backend's errors drive the caller's retries and fallbacks as intended."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from router.backends.base import Backend, Target
from router.backends.calls import Attempts, complete_with_fallbacks, open_stream_with_fallbacks
from router.backends.local import LocalBackend
from router.errors import ServiceUnavailable
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.route.decision import RouteDecision
from router.testing.scripted_engine import ScriptedEngine


class Hosted:
    """A stand-in for the hosted model: answers at once."""

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        self.calls += 1
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "hosted"}}]}
        return Completion(body=body, usage=Usage(1, 1), model=target.name)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        self.calls += 1
        yield Chunk({"choices": [{"index": 0, "delta": {"content": "hosted"}}]})

    async def aclose(self) -> None:
        return None


def setup(queue_full: str) -> tuple[Policy, RouteDecision, LocalBackend, Hosted, threading.Event]:
    policy = Policy.model_validate(
        {
            "models": [
                {
                    "name": "small",
                    "backend": "local",
                    "fallbacks": ["big"],
                    "local": {
                        "source": "scripted",
                        "max_concurrency": 1,
                        "max_queue": 0,
                        "queue_full": queue_full,
                    },
                },
                {"name": "big", "backend": "openai_compat", "endpoint": "http://x/v1"},
            ]
        }
    )
    small, big = policy.models
    decision = RouteDecision(
        target=small, fallbacks=(big,), score=0.1, reason="test", policy_hash="h"
    )
    gate = threading.Event()
    local = LocalBackend()
    assert small.local is not None
    local.add("small", small.local, ScriptedEngine(gate=gate))
    return policy, decision, local, Hosted(), gate


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


async def occupy(local: LocalBackend, policy: Policy) -> asyncio.Task[Completion]:
    small = policy.models[0]
    task = asyncio.create_task(local.complete(request(), Target.of(policy, small)))
    for _ in range(400):
        if local.stats()["small"].running:
            return task
        await asyncio.sleep(0.005)
    raise AssertionError("the first request never started")


async def test_a_full_local_queue_falls_back_at_once_without_retrying() -> None:
    policy, decision, local, hosted, gate = setup("fallback")
    first = await occupy(local, policy)

    def backend_for(model: ModelSpec) -> Backend:
        return local if model.backend == "local" else hosted

    attempts = Attempts()
    done = await complete_with_fallbacks(request(), decision, policy, backend_for, attempts)
    assert done.model == "big" and hosted.calls == 1
    assert attempts.failures == [("small", "local_queue_full")]  # tried once, not retried
    attempts = Attempts()
    first_chunk, _ = await open_stream_with_fallbacks(
        request(stream=True), decision, policy, backend_for, attempts
    )
    assert first_chunk.data["choices"][0]["delta"]["content"] == "hosted"
    assert attempts.failures == [("small", "local_queue_full")]
    gate.set()
    await first


async def test_reject_does_not_fall_back() -> None:
    policy, decision, local, hosted, gate = setup("reject")
    first = await occupy(local, policy)

    def backend_for(model: ModelSpec) -> Backend:
        return local if model.backend == "local" else hosted

    with pytest.raises(ServiceUnavailable):
        await complete_with_fallbacks(request(), decision, policy, backend_for, Attempts())
    assert hosted.calls == 0
    gate.set()
    await first
