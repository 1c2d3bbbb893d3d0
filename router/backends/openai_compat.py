"""The ``openai_compat`` backend: OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama.

One pooled ``aiohttp.ClientSession`` serves every model. It replaced ``httpx.AsyncClient``:
httpx's own pool collapses under concurrency (httpx issue #3215), and even over aiohttp's
transport httpx's request and response models cost about 40 % of the gateway's CPU per request
(docs/performance.md has the measurements). Streams are forwarded event by event as they arrive;
nothing is buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from router.backends.base import Target
from router.backends.idle_watch import IdleWatch
from router.backends.translate import from_exception, from_status
from router.errors import StreamInterrupted, UpstreamServerError
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.protocol.messages import openai_body
from router.protocol.sse import DataSplitter


def upstream_body(req: ChatRequest, target: ModelSpec) -> dict[str, Any]:
    """The request body sent upstream: the client's fields as sent, the target's model name,
    and, for streams, a request for the usage chunk (the gateway always bills from it)."""
    body = dict(openai_body(req.raw_body()))  # a translated Messages body loses Anthropic's fields
    if target.extra_body:
        body.update(target.extra_body)
    body["model"] = target.wire_model
    if req.stream:
        opts = dict(body.get("stream_options") or {})
        opts["include_usage"] = True
        body["stream_options"] = opts
    else:
        body.pop("stream_options", None)
    return body


def request_headers(target: ModelSpec) -> dict[str, str]:
    """Headers for ``target``: its credential and any configured extras."""
    headers = {"content-type": "application/json", **target.headers}
    if target.api_key is not None:
        headers["authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    return headers


def _url(target: ModelSpec) -> str:
    if not target.endpoint:
        raise UpstreamServerError(f"Model '{target.name}' has no endpoint.", model=target.name)
    return target.endpoint.rstrip("/") + "/chat/completions"


def _client_timeout(connect_s: float) -> aiohttp.ClientTimeout:
    # The total deadline is enforced with asyncio.timeout around each call; aiohttp only
    # bounds the connect phase.
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s, connect=connect_s)


class OpenAICompatBackend:
    """Calls OpenAI-compatible servers over one shared, pooled HTTP session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """POST the request and return the whole completion."""
        timeouts, model = target.timeouts, target.model
        content = orjson.dumps(upstream_body(req, model))
        try:
            async with asyncio.timeout(timeouts.total_s):
                async with self._session.post(
                    _url(model),
                    data=content,
                    headers=request_headers(model),
                    timeout=_client_timeout(timeouts.connect_s),
                ) as resp:
                    status, raw = resp.status, await resp.read()
        except Exception as exc:
            raise from_exception(exc, target.name) from exc
        if status != 200:
            raise from_status(status, raw, target.name)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamServerError(
                f"Upstream '{target.name}' returned a body that is not JSON.", model=target.name
            ) from exc
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamServerError(
                f"Upstream '{target.name}' returned no choices.", model=target.name
            )
        return Completion(body=body, usage=Usage.from_openai(body.get("usage")), model=target.name)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """POST with ``stream: true`` and yield chunks as they arrive."""
        timeouts, model = target.timeouts, target.model
        content = orjson.dumps(upstream_body(req, model))
        first_s = timeouts.first_token_s or timeouts.total_s
        try:
            async with asyncio.timeout(first_s):
                resp = await self._session.post(
                    _url(model),
                    data=content,
                    headers=request_headers(model),
                    timeout=_client_timeout(timeouts.connect_s),
                )
        except Exception as exc:
            raise from_exception(exc, target.name) from exc
        try:
            if resp.status != 200:
                try:
                    async with asyncio.timeout(timeouts.total_s):
                        body = await resp.read()
                except Exception:
                    body = b""
                raise from_status(resp.status, body, target.name)
            async for chunk in _parse_sse(resp, target.name, timeouts.total_s):
                yield chunk
        finally:
            resp.release()

    async def aclose(self) -> None:
        """The shared session belongs to Services, which closes it."""


async def _parse_sse(
    resp: aiohttp.ClientResponse, model: str, idle_s: float
) -> AsyncIterator[Chunk]:
    """Split an SSE byte stream into chunks; raise if it ends before ``data: [DONE]``.

    Each read waits at most ``idle_s`` seconds. Every event a read completed is parsed here,
    in order (a read often holds several when the gateway is busy).
    """
    content = resp.content
    splitter = DataSplitter()
    watch = IdleWatch(idle_s)
    try:
        while True:
            try:
                piece = await watch.read(content.readany)
            except Exception as exc:
                raise from_exception(exc, model, streaming=True) from exc
            if not piece:  # the end of the body
                break
            for payload in splitter.feed(piece):
                yield _chunk(payload, model)
            if splitter.done:
                return
    finally:
        watch.close()
    raise StreamInterrupted(f"Upstream '{model}' ended the stream before [DONE].", model=model)


def _chunk(payload: bytes, model: str) -> Chunk:
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise StreamInterrupted(f"Upstream '{model}' sent a malformed chunk.", model=model) from exc
    if not isinstance(data, dict):
        raise StreamInterrupted(f"Upstream '{model}' sent a malformed chunk.", model=model)
    if "error" in data:
        err = data["error"]
        msg = err.get("message") if isinstance(err, dict) else str(err)
        raise StreamInterrupted(f"Upstream '{model}' failed mid-stream: {msg}", model=model)
    usage = data.get("usage")  # OpenAI sends "usage": null on every chunk but the last
    return Chunk(data=data, usage=None if usage is None else Usage.from_openai(usage), raw=payload)
