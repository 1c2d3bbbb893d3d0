"""The request and error path ``openai_compat`` and ``openai_responses`` share
(:mod:`router.backends.upstream_http`), through both backends, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from router.backends.base import Target
from router.backends.openai_compat import OpenAICompatBackend
from router.backends.openai_responses import OpenAIResponsesBackend
from router.errors import (
    UpstreamConnectionError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
)
from router.policy.schema import ModelSpec, Timeouts
from router.protocol.chat_request import ChatRequest

Call = Callable[[aiohttp.ClientSession, ChatRequest, Target], Awaitable[object]]


async def compat_complete(s: aiohttp.ClientSession, req: ChatRequest, t: Target) -> object:
    return await OpenAICompatBackend(s).complete(req, t)


async def compat_stream(s: aiohttp.ClientSession, req: ChatRequest, t: Target) -> object:
    return await OpenAICompatBackend(s).stream(req, t).__anext__()


async def responses_complete(s: aiohttp.ClientSession, req: ChatRequest, t: Target) -> object:
    return await OpenAIResponsesBackend(s).complete(req, t)


async def responses_stream(s: aiohttp.ClientSession, req: ChatRequest, t: Target) -> object:
    return await OpenAIResponsesBackend(s).stream(req, t).__anext__()


CALLS = {
    "compat-complete": (compat_complete, "/v1/chat/completions", False),
    "compat-stream": (compat_stream, "/v1/chat/completions", True),
    "responses-complete": (responses_complete, "/v1/responses", False),
    "responses-stream": (responses_stream, "/v1/responses", True),
}


@dataclass
class Upstream:
    """What the loopback upstream answers, and what it was sent."""

    url: str
    status: int = 429
    body: bytes = b'{"error": {"message": "slow down"}}'
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream(url="")

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        state.seen.append((request.path, dict(request.headers)))
        return web.Response(status=state.status, body=state.body)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/responses", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/"
    try:
        yield state
    finally:
        await runner.cleanup()


def target(endpoint: str | None, stream: bool) -> tuple[ChatRequest, Target]:
    spec = ModelSpec.model_validate(
        {
            "name": "m",
            "backend": "openai_compat",
            "endpoint": endpoint,
            "api_key": "sk-test",
            "headers": {"x-extra": "1"},
        }
    )
    req = ChatRequest.model_validate(
        {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "x"}]}
    )
    return req, Target(spec, Timeouts(connect_s=5, total_s=10))


@pytest.mark.parametrize("name", CALLS)
async def test_a_failed_status_is_translated_after_the_same_request(
    name: str, upstream: Upstream
) -> None:
    call, path, stream = CALLS[name]
    req, tgt = target(upstream.url, stream)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamRateLimited, match="Upstream 'm' returned 429: slow down"):
            await call(session, req, tgt)
        # the connection went back to the pool: the next call gets its answer too
        with pytest.raises(UpstreamRateLimited):
            await call(session, req, tgt)
    [(seen_path, headers), _] = upstream.seen
    assert seen_path == path
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Content-Type"] == "application/json" and headers["x-extra"] == "1"


@pytest.mark.parametrize("name", ["compat-complete", "responses-complete"])
async def test_a_body_that_is_not_json_is_a_server_error(name: str, upstream: Upstream) -> None:
    call, _, stream = CALLS[name]
    upstream.status, upstream.body = 200, b"<html>"
    req, tgt = target(upstream.url, stream)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(UpstreamServerError, match="Upstream 'm' returned a body that is not"):
            await call(session, req, tgt)


@pytest.mark.parametrize("name", CALLS)
@pytest.mark.parametrize(
    ("endpoint", "error", "message"),
    [
        (None, UpstreamServerError, "Model 'm' has no endpoint"),
        ("http://127.0.0.1:1/v1", UpstreamConnectionError, "Upstream 'm' is unreachable"),
    ],
)
async def test_no_endpoint_and_no_server_fail_alike(
    name: str, endpoint: str | None, error: type[UpstreamError], message: str
) -> None:
    call, _, stream = CALLS[name]
    req, tgt = target(endpoint, stream)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(error, match=message):
            await call(session, req, tgt)
