"""The ``openai_compat`` backend: OpenAI, Azure OpenAI, vLLM, llama.cpp server, Ollama.

One pooled ``aiohttp.ClientSession`` serves every model. It replaced ``httpx.AsyncClient``:
httpx's own pool collapses under concurrency (httpx issue #3215), and even over aiohttp's
transport httpx's request and response models cost about 40 % of the gateway's CPU per request
(docs/performance.md has the measurements). Streams are forwarded event by event as they arrive;
nothing is buffered.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from router.backends.base import Target
from router.backends.idle_watch import IdleWatch
from router.backends.translate import from_exception
from router.backends.upstream_http import json_answer, open_stream, post_for_body
from router.errors import StreamInterrupted, UpstreamServerError
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage
from router.protocol.messages import openai_body
from router.protocol.sse import DataSplitter

_PATH = "/chat/completions"


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


class OpenAICompatBackend:
    """Calls OpenAI-compatible servers over one shared, pooled HTTP session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """POST the request and return the whole completion."""
        raw = await post_for_body(self._session, target, _PATH, upstream_body(req, target.model))
        body = json_answer(raw, target.name)
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamServerError(
                f"Upstream '{target.name}' returned no choices.", model=target.name
            )
        return Completion(body=body, usage=Usage.from_openai(body.get("usage")), model=target.name)

    def stream(self, req: ChatRequest, target: Target) -> SSEStream:
        """POST with ``stream: true``; the chunks as they arrive (nothing is sent until the
        first is awaited)."""
        return SSEStream(self._session, req, target)

    async def aclose(self) -> None:
        """The shared session belongs to Services, which closes it."""


class SSEStream:
    """The chunks of one streamed upstream response, parsed as they arrive.

    An async iterator of chunks like every backend's stream, and a
    :class:`~router.backends.base.BatchedStream`: :meth:`batch` hands out every chunk one read
    completed. The request is sent when the first chunk is awaited. Each read waits at most the
    model's ``total_s``; a stream that ends before ``data: [DONE]``, a malformed chunk or an
    error event raises :class:`~router.errors.StreamInterrupted` after the chunks before it.
    """

    def __init__(self, session: aiohttp.ClientSession, req: ChatRequest, target: Target) -> None:
        self._session = session
        self._req = req
        self._target = target
        self._resp: aiohttp.ClientResponse | None = None
        self._watch: IdleWatch | None = None
        self._splitter = DataSplitter()
        self._pending: list[Chunk] = []
        """Chunks read but not handed out yet (the rest of the first read, for one)."""
        self._error: BaseException | None = None
        """Raised once the chunks read before it are handed out."""
        self._ended = False

    def __aiter__(self) -> SSEStream:
        return self

    async def __anext__(self) -> Chunk:
        if not self._pending:
            self._pending = await self.batch()
            if not self._pending:
                raise StopAsyncIteration
        return self._pending.pop(0)

    async def batch(self) -> list[Chunk]:
        """The chunks of the next read, or those left over; ``[]`` once ``[DONE]`` came."""
        if self._pending:
            out, self._pending = self._pending, []
            return out
        if self._error is not None:
            raise self._error
        if self._ended:
            return []
        if self._resp is None:
            self._resp = await self._open()
            self._watch = IdleWatch(self._target.timeouts.total_s)
        assert self._watch is not None
        content, model = self._resp.content, self._target.name
        while True:
            try:
                piece = await self._watch.read(content.readany)
            except Exception as exc:
                self._close()
                raise from_exception(exc, model, streaming=True) from exc
            if not piece:  # the end of the body, before [DONE]
                self._close()
                raise StreamInterrupted(
                    f"Upstream '{model}' ended the stream before [DONE].", model=model
                )
            out = []
            for payload in self._splitter.feed(piece):
                try:
                    out.append(_chunk(payload, model))
                except StreamInterrupted as exc:
                    self._close()
                    if not out:
                        raise
                    self._error = exc
                    return out
            if self._splitter.done:
                self._close()
                self._ended = True
            if out or self._ended:
                return out

    async def _open(self) -> aiohttp.ClientResponse:
        """Send the request; the response once its status is 200."""
        return await open_stream(
            self._session, self._target, _PATH, upstream_body(self._req, self._target.model)
        )

    def _close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        if self._resp is not None:
            self._resp.release()

    async def aclose(self) -> None:
        """Stop reading and release the connection."""
        self._ended = True
        self._pending = []
        self._close()


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
