"""The ``openai_compat`` backend: OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama.

One pooled ``httpx.AsyncClient`` (over aiohttp's transport, see docs/performance.md) serves
every model. Streams are forwarded event by event as they arrive; nothing is buffered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from router.api.protocol import ChatRequest
from router.backends.base import Chunk, Completion, Usage
from router.backends.translate import from_exception, from_status
from router.errors import StreamInterrupted, UpstreamServerError
from router.policy.schema import ModelSpec, Policy


def upstream_body(req: ChatRequest, target: ModelSpec) -> dict[str, Any]:
    """The request body sent upstream: the client's fields as sent, the target's model name,
    and, for streams, a request for the usage chunk (the gateway always bills from it)."""
    body = dict(req.raw_body())
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


class OpenAICompatBackend:
    """Calls OpenAI-compatible servers over one shared, pooled HTTP client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def complete(self, req: ChatRequest, target: ModelSpec, policy: Policy) -> Completion:
        """POST the request and return the whole completion."""
        timeouts = policy.timeouts_for(target)
        content = orjson.dumps(upstream_body(req, target))
        try:
            async with asyncio.timeout(timeouts.total_s):
                resp = await self._client.post(
                    _url(target), content=content, headers=request_headers(target)
                )
        except Exception as exc:
            raise from_exception(exc, target.name) from exc
        if resp.status_code != 200:
            raise from_status(resp.status_code, resp.content, target.name)
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise UpstreamServerError(
                f"Upstream '{target.name}' returned a body that is not JSON.", model=target.name
            ) from exc
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamServerError(
                f"Upstream '{target.name}' returned no choices.", model=target.name
            )
        return Completion(body=body, usage=Usage.from_openai(body.get("usage")), model=target.name)

    async def stream(
        self, req: ChatRequest, target: ModelSpec, policy: Policy
    ) -> AsyncIterator[Chunk]:
        """POST with ``stream: true`` and yield chunks as they arrive."""
        timeouts = policy.timeouts_for(target)
        content = orjson.dumps(upstream_body(req, target))
        first_s = timeouts.first_token_s or timeouts.total_s
        request = self._client.build_request(
            "POST", _url(target), content=content, headers=request_headers(target)
        )
        try:
            async with asyncio.timeout(first_s):
                resp = await self._client.send(request, stream=True)
        except Exception as exc:
            raise from_exception(exc, target.name) from exc
        try:
            if resp.status_code != 200:
                try:
                    async with asyncio.timeout(timeouts.total_s):
                        body = await resp.aread()
                except Exception:
                    body = b""
                raise from_status(resp.status_code, body, target.name)
            async for chunk in _parse_sse(resp, target.name, timeouts.total_s):
                yield chunk
        finally:
            await resp.aclose()

    async def aclose(self) -> None:
        """The shared client belongs to Services, which closes it."""


async def _parse_sse(resp: httpx.Response, model: str, idle_s: float) -> AsyncIterator[Chunk]:
    """Split an SSE byte stream into chunks; raise if it ends before ``data: [DONE]``."""
    buf = b""
    it = resp.aiter_bytes().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_s):
                piece = await it.__anext__()
        except StopAsyncIteration:
            break
        except Exception as exc:
            raise from_exception(exc, model, streaming=True) from exc
        buf += piece
        if b"\r\n" in buf:
            buf = buf.replace(b"\r\n", b"\n")
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                break
            event, buf = buf[:end], buf[end + 2 :]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    return
                yield _chunk(payload, model)
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
    return Chunk(data=data, usage=Usage.from_openai(data.get("usage")), raw=payload)
