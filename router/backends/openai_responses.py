"""The ``openai_responses`` backend: an upstream that speaks OpenAI's Responses API natively.

A request that came through ``/v1/responses`` is sent as the client wrote it (only ``model``
and ``stream`` are the gateway's); any other request (chat completions, a continued
conversation, or one a guard redacted) is translated to a Responses request. The answer is
read back as a chat completion or chat chunks (:mod:`router.protocol.responses_reverse`), so
the pipeline caches, bills and records it like any other, and ``/v1/responses`` renders it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from router.backends.base import Target
from router.backends.translate import from_exception
from router.backends.upstream_http import json_answer, open_stream, post_for_body
from router.errors import StreamInterrupted, UpstreamServerError
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.protocol.responses import ResponsesChatRequest
from router.protocol.responses_reverse import EventsToChunks, chat_to_responses, responses_to_chat

_PATH = "/responses"


def upstream_body(req: ChatRequest, target: ModelSpec) -> dict[str, Any]:
    """The Responses body for ``target``: the client's own when it may be sent as is."""
    native = req.native_body() if isinstance(req, ResponsesChatRequest) else None
    body = dict(native) if native is not None else chat_to_responses(req.raw_body())
    if target.extra_body:
        body.update(target.extra_body)
    body["model"] = target.wire_model
    body["stream"] = req.stream
    return body


class OpenAIResponsesBackend:
    """Calls ``<endpoint>/responses`` over the gateway's pooled HTTP session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """POST the request; the whole answer as a chat completion."""
        model = target.model
        raw = await post_for_body(self._session, target, _PATH, upstream_body(req, model))
        answer = json_answer(raw, model.name)
        if not isinstance(answer, dict) or not isinstance(answer.get("output"), list):
            raise UpstreamServerError(
                f"Upstream '{model.name}' returned no output.", model=model.name
            )
        if answer.get("status") == "failed":
            error = answer.get("error") or {}
            raise UpstreamServerError(
                f"Upstream '{model.name}' failed: {error.get('message')}", model=model.name
            )
        body, usage = responses_to_chat(answer)
        return Completion(body=body, usage=usage, model=model.name)

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """POST with ``stream: true``; yield the events as chat chunks as they arrive."""
        model, timeouts = target.model, target.timeouts
        resp = await open_stream(self._session, target, _PATH, upstream_body(req, model))
        try:
            reader = EventsToChunks(model=model.wire_model)
            async for event in _events(resp, model.name, timeouts.total_s):
                kind = event.get("type")
                if kind in ("response.failed", "error"):
                    error = event.get("error") or (event.get("response") or {}).get("error") or {}
                    raise StreamInterrupted(
                        f"Upstream '{model.name}' failed mid-stream: {error.get('message')}",
                        model=model.name,
                    )
                for data in reader.event(event):
                    usage = Usage.from_openai(data.get("usage"))
                    yield Chunk(data=data, usage=usage)
                if reader.done:
                    return
            raise StreamInterrupted(
                f"Upstream '{model.name}' ended the stream before response.completed.",
                model=model.name,
            )
        finally:
            resp.release()

    async def aclose(self) -> None:
        """The shared session belongs to Services, which closes it."""


async def _events(
    resp: aiohttp.ClientResponse, model: str, idle_s: float
) -> AsyncIterator[dict[str, Any]]:
    """The JSON ``data`` of each server-sent event, as it arrives."""
    buf = b""
    it = resp.content.iter_any().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle_s):
                piece = await it.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise from_exception(exc, model, streaming=True) from exc
        buf = (buf + piece).replace(b"\r\n", b"\n")
        while (end := buf.find(b"\n\n")) >= 0:
            block, buf = buf[:end], buf[end + 2 :]
            for line in block.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                try:
                    data = orjson.loads(line[5:].strip())
                except orjson.JSONDecodeError as exc:
                    raise StreamInterrupted(
                        f"Upstream '{model}' sent a malformed event.", model=model
                    ) from exc
                if isinstance(data, dict):
                    yield data
