"""The local backend over a scripted engine: response shapes, the queue, cancellation, loading."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, cast

import pytest

from router.backends.base import Target
from router.backends.local import LocalBackend, LocalModelUnavailable, LocalQueueFull
from router.backends.local_engine import Engine
from router.errors import (
    ServiceUnavailable,
    UpstreamBadRequest,
    UpstreamError,
    UpstreamServerError,
    UpstreamTimeout,
)
from router.policy.schema import ModelSpec, Policy
from router.policy.sections.local_model import LocalModelSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk
from router.testing.scripted_engine import ScriptedEngine


def policy(**local: Any) -> Policy:
    settings = {"source": "scripted", **local}
    return Policy.model_validate(
        {
            "models": [
                {"name": "small", "backend": "local", "local": settings},
                {"name": "hosted", "backend": "openai_compat", "endpoint": "http://x/v1"},
            ],
            "defaults": {"timeouts": {"total_s": 5}},
        }
    )


def request(**fields: Any) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "small", "messages": [{"role": "user", "content": "Say hi"}], **fields}
    )


def backend_with(engine: Engine, pol: Policy) -> LocalBackend:
    backend = LocalBackend()
    spec = pol.model("small")
    assert spec is not None and spec.local is not None
    backend.add("small", spec.local, engine)
    return backend


def small(pol: Policy) -> ModelSpec:
    spec = pol.model("small")
    assert spec is not None
    return spec


async def collect(it: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in it]


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not met in 2 s")


def is_ready(backend: LocalBackend) -> bool:
    return backend.ready


def open_stream(backend: LocalBackend, pol: Policy, **fields: Any) -> AsyncGenerator[Chunk, None]:
    return cast(
        AsyncGenerator[Chunk, None],
        backend.stream(request(stream=True, **fields), Target.of(pol, small(pol))),
    )


async def test_complete_returns_an_openai_chat_completion() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(), pol)
    done = await backend.complete(request(), Target.of(pol, small(pol)))
    assert done.model == "small"
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 4)
    body = done.body
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hello, world!",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    stats = backend.stats()["small"]
    assert (stats.requests, stats.completion_tokens, stats.running) == (1, 4, 0)
    await backend.aclose()


async def test_stream_sends_role_text_finish_then_usage() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(), pol)
    chunks = await collect(backend.stream(request(stream=True), Target.of(pol, small(pol))))
    assert chunks[0].data["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    texts = [c.data["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert texts == ["Hello", ",", " world", "!"]
    assert chunks[-2].data["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    last = chunks[-1]
    assert last.data["choices"] == [] and last.usage is not None
    assert last.data["usage"]["total_tokens"] == last.usage.total_tokens == 8
    assert {c.data["id"] for c in chunks} == {chunks[0].data["id"]}
    assert all(c.data["object"] == "chat.completion.chunk" for c in chunks)


async def test_request_parameters_reach_the_engine() -> None:
    pol = policy(max_new_tokens=50, default_temperature=0.3)
    engine = ScriptedEngine()
    backend = backend_with(engine, pol)
    await backend.complete(request(), Target.of(pol, small(pol)))
    await backend.complete(
        request(temperature=0, top_p=0.5, stop="x", seed=3, max_tokens=2),
        Target.of(pol, small(pol)),
    )
    await backend.complete(
        request(max_completion_tokens=7, stop=["a", "b"]), Target.of(pol, small(pol))
    )
    first, second, third = engine.seen
    assert (first.max_new_tokens, first.temperature, first.top_p, first.stop) == (50, 0.3, 1, ())
    assert (second.temperature, second.top_p, second.stop, second.seed) == (0, 0.5, ("x",), 3)
    assert second.max_new_tokens == 2
    assert (third.max_new_tokens, third.stop) == (7, ("a", "b"))


async def test_max_tokens_gives_length_and_stop_sequences_cut() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(), pol)
    short = await backend.complete(request(max_tokens=2), Target.of(pol, small(pol)))
    assert short.body["choices"][0]["message"]["content"] == "Hello,"
    assert short.body["choices"][0]["finish_reason"] == "length"
    cut = await backend.complete(request(stop=[" wor"]), Target.of(pol, small(pol)))
    assert cut.body["choices"][0]["message"]["content"] == "Hello,"
    assert cut.body["choices"][0]["finish_reason"] == "stop"


async def test_output_is_capped_by_the_context_window() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(context_window=5), pol)
    done = await backend.complete(request(max_tokens=100), Target.of(pol, small(pol)))
    assert done.usage is not None  # a 4-token prompt leaves room for 1 token
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 1)
    assert done.body["choices"][0]["finish_reason"] == "length"
    long = request(messages=[{"role": "user", "content": "one two three four five six"}])
    with pytest.raises(UpstreamBadRequest) as err:
        await backend.complete(long, Target.of(pol, small(pol)))
    assert err.value.code == "context_length_exceeded"


async def test_n_above_one_is_a_bad_request() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(), pol)
    with pytest.raises(UpstreamBadRequest, match="'n'"):
        await backend.complete(request(n=2), Target.of(pol, small(pol)))


async def test_an_engine_failure_is_a_retryable_upstream_error() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(fail_with=RuntimeError("CUDA out of memory")), pol)
    with pytest.raises(UpstreamServerError, match="CUDA out of memory") as err:
        await backend.complete(request(), Target.of(pol, small(pol)))
    assert err.value.retryable and err.value.model == "small"
    assert backend.stats()["small"].running == 0


async def hold_one(backend: LocalBackend, pol: Policy, gate: threading.Event) -> asyncio.Task[Any]:
    """Start a request that occupies the only slot until ``gate`` is set."""
    task = asyncio.create_task(backend.complete(request(), Target.of(pol, small(pol))))
    await until(lambda: backend.stats()["small"].running == 1)
    return task


@pytest.mark.parametrize(
    ("action", "error"),
    [("fallback", LocalQueueFull), ("reject", ServiceUnavailable)],
)
async def test_a_full_queue_falls_back_or_rejects(action: str, error: type[Exception]) -> None:
    pol = policy(max_concurrency=1, max_queue=0, queue_full=action)
    gate = threading.Event()
    backend = backend_with(ScriptedEngine(gate=gate), pol)
    first = await hold_one(backend, pol, gate)
    with pytest.raises(error) as err:
        await backend.complete(request(), Target.of(pol, small(pol)))
    if action == "fallback":
        assert isinstance(err.value, UpstreamError) and err.value.retryable
        assert err.value.status == 503
    else:
        assert not isinstance(err.value, UpstreamError)
        assert err.value.status == 503  # type: ignore[attr-defined]
    gate.set()
    assert (await first).body["choices"][0]["message"]["content"] == "Hello, world!"
    assert backend.stats()["small"].rejected == 1


async def test_requests_within_max_queue_wait_for_a_slot() -> None:
    pol = policy(max_concurrency=1, max_queue=1, queue_full="reject")
    gate = threading.Event()
    backend = backend_with(ScriptedEngine(gate=gate), pol)
    first = await hold_one(backend, pol, gate)
    second = asyncio.create_task(backend.complete(request(), Target.of(pol, small(pol))))
    await until(lambda: backend.stats()["small"].waiting == 1)
    with pytest.raises(ServiceUnavailable):  # the queue of one is taken
        await backend.complete(request(), Target.of(pol, small(pol)))
    gate.set()
    await asyncio.gather(first, second)
    assert backend.stats()["small"].requests == 2


async def test_wait_ignores_max_queue_and_times_out_into_a_fallback() -> None:
    pol = policy(max_concurrency=1, max_queue=0, queue_full="wait", queue_timeout_s=0.05)
    gate = threading.Event()
    backend = backend_with(ScriptedEngine(gate=gate), pol)
    first = await hold_one(backend, pol, gate)
    with pytest.raises(LocalQueueFull, match="no free slot"):
        await backend.complete(request(), Target.of(pol, small(pol)))
    waiter = asyncio.create_task(backend.complete(request(), Target.of(pol, small(pol))))
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(first, waiter)


async def test_a_client_that_leaves_cancels_the_generation_and_frees_the_slot() -> None:
    pol = policy(max_concurrency=1, max_queue=0, queue_full="reject")
    gate = threading.Event()
    engine = ScriptedEngine(gate=gate)
    backend = backend_with(engine, pol)
    stream = open_stream(backend, pol)

    async def first() -> Chunk:
        return await anext(stream)

    task = asyncio.create_task(first())
    await asyncio.to_thread(engine.started.wait, 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stream.aclose()
    await asyncio.to_thread(engine.cancelled.wait, 2)
    assert engine.cancelled.is_set()
    await until(lambda: backend.stats()["small"].running == 0)
    gate.set()
    engine.gate = None
    done = await backend.complete(request(), Target.of(pol, small(pol)))  # the slot is free again
    assert done.body["choices"][0]["finish_reason"] == "stop"


async def test_a_stream_closed_midway_stops_the_worker() -> None:
    pol = policy()
    engine = ScriptedEngine(pieces=["x"] * 200, context_window=1000, token_delay_s=0.002)
    backend = backend_with(engine, pol)
    stream = open_stream(backend, pol, max_tokens=500)
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    await asyncio.to_thread(engine.cancelled.wait, 2)
    assert engine.cancelled.is_set()


async def test_the_total_timeout_applies() -> None:
    pol = Policy.model_validate(
        {
            "models": [{"name": "small", "backend": "local", "local": {"source": "s"}}],
            "defaults": {"timeouts": {"total_s": 0.05}},
        }
    )
    gate = threading.Event()
    backend = backend_with(ScriptedEngine(gate=gate), pol)
    try:
        with pytest.raises(UpstreamTimeout):
            await backend.complete(request(), Target.of(pol, small(pol)))
    finally:
        gate.set()


async def test_start_loads_the_policy_models_and_reports_ready() -> None:
    loaded: list[LocalModelSettings] = []
    gate = threading.Event()

    def loader(settings: LocalModelSettings) -> Engine:
        gate.wait(2)
        loaded.append(settings)
        return ScriptedEngine()

    backend = LocalBackend(loader=loader)
    pol = policy()
    assert not is_ready(backend)
    starting = asyncio.create_task(backend.start(pol))
    await asyncio.sleep(0.02)
    assert backend.loading == {"small"} and not is_ready(backend)
    with pytest.raises(LocalModelUnavailable, match="is loading"):
        await backend.complete(request(), Target.of(pol, small(pol)))
    gate.set()
    await starting
    assert is_ready(backend) and backend.loading == frozenset()
    await backend.start(pol)  # unchanged: nothing is reloaded
    assert len(loaded) == 1
    await backend.start(policy(max_queue=3))  # changed settings: reloaded
    assert len(loaded) == 2 and loaded[-1].max_queue == 3
    await backend.start(Policy.model_validate({"models": [pol.models[1].model_dump()]}))
    assert is_ready(backend) and backend.stats() == {}
    await backend.aclose()


async def test_a_model_that_fails_to_load_is_unavailable_and_not_ready() -> None:
    def loader(settings: LocalModelSettings) -> Engine:
        raise FileNotFoundError("no such folder")

    backend = LocalBackend(loader=loader)
    pol = policy()
    await backend.start(pol)
    assert not is_ready(backend)
    assert "no such folder" in backend.errors["small"]
    with pytest.raises(LocalModelUnavailable, match="no such folder") as err:
        await backend.complete(request(), Target.of(pol, small(pol)))
    assert err.value.retryable  # so the caller falls back to the next model


async def test_aclose_closes_the_engines() -> None:
    pol = policy()
    engine = ScriptedEngine()
    backend = backend_with(engine, pol)
    await backend.aclose()
    assert engine.closed
    with pytest.raises(LocalModelUnavailable):
        await backend.complete(request(), Target.of(pol, small(pol)))


async def test_aclose_cancels_running_generations() -> None:
    pol = policy()
    gate = threading.Event()
    engine = ScriptedEngine(gate=gate)
    backend = backend_with(engine, pol)
    running = asyncio.create_task(backend.complete(request(), Target.of(pol, small(pol))))
    await asyncio.to_thread(engine.started.wait, 2)
    await asyncio.wait_for(backend.aclose(), 2)
    assert engine.cancelled.is_set() and engine.closed
    running.cancel()
    with pytest.raises((asyncio.CancelledError, UpstreamError)):
        await running


async def test_messages_the_template_refuses_are_a_bad_request() -> None:
    pol = policy()
    backend = backend_with(ScriptedEngine(), pol)
    odd = request(messages=[{"role": "function", "content": "x", "name": "f"}])
    done = await backend.complete(odd, Target.of(pol, small(pol)))  # function becomes tool
    assert done.body["choices"][0]["finish_reason"] == "stop"
    dev = request(messages=[{"role": "developer", "content": "Be brief."}])
    assert (await backend.complete(dev, Target.of(pol, small(pol)))).usage is not None
    engine = ScriptedEngine()
    backend = backend_with(engine, pol)

    def refuse(messages: Any) -> list[int]:
        raise ValueError("Conversation roles must alternate user/assistant")

    engine.encode_chat = refuse  # type: ignore[method-assign]
    with pytest.raises(UpstreamBadRequest, match="must alternate") as err:
        await backend.complete(request(), Target.of(pol, small(pol)))
    assert err.value.param == "messages"
