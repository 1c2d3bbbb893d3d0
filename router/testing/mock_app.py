"""The mock upstream's ASGI application: a bare, fast OpenAI-compatible HTTP surface.

A plain ASGI callable (no framework routing) so that a loaded gateway, not the mock, is what a
benchmark measures. Endpoints: ``POST /v1/chat/completions`` (JSON or SSE), ``POST /v1/messages``
(Anthropic's Messages API, see :mod:`router.testing.mock_messages`), ``GET /v1/models``,
``GET /health``, and the control surface ``GET /_mock/stats``, ``POST /_mock/reset``,
``GET|POST /_mock/config``. The ``/v1`` prefix is optional.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message, Receive, Scope, Send

from router.testing.mock_config import (
    MockConfig,
    RequestControl,
    apply_header,
    parse_model_directives,
)
from router.testing.mock_messages import answer as messages_answer
from router.testing.mock_messages import anthropic_error
from router.testing.mock_replies import (
    MockRequestError,
    Reply,
    SseEvent,
    build_reply,
    completion_body,
    embeddings_body,
    stream_events,
)
from router.testing.mock_responses import responses_reply

_MAX_BODY_BYTES = 32 * 1024 * 1024
_JSON = ((b"content-type", b"application/json"),)
_SSE = ((b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"))
_ERROR_TYPES = MappingProxyType({403: "permission_error", 429: "requests"})
_ERROR_CODES = MappingProxyType(
    {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
)
_DIRECTIVE_CACHE_SIZE = 1024
_REPLY_CACHE_SIZE = 4096


class StreamCutError(Exception):
    """Raised inside the app to make the server drop a stream's connection on purpose."""


class QuietStreamCuts(logging.Filter):
    """Logging filter that hides the server's traceback for deliberate stream cuts."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop records whose exception is a :class:`StreamCutError`."""
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamCutError)


def error_json(status: int, message: str, param: str | None = None) -> bytes:
    """OpenAI's error body for ``status``."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    error = {"message": message, "type": kind, "param": param, "code": _ERROR_CODES.get(status)}
    return orjson.dumps({"error": error})


class MockState:
    """Mutable state of one mock server: the running config, counters and recent requests."""

    def __init__(self, config: MockConfig) -> None:
        self.initial_config = config
        self.config = config
        self.directives: dict[str, RequestControl] = {}
        self.replies: dict[tuple[bytes, int | None], Reply] = {}
        self.history: deque[tuple[str, list[tuple[bytes, bytes]], Any]] = deque()
        self.prompt_cache: set[str] = set()
        """Digests of prompt prefixes cached by ``POST /v1/messages`` (see mock_messages)."""
        self.reset(keep_config=False)

    def set_config(self, config: MockConfig) -> None:
        """Swap the running config; restarts fail_first_n counting and the fail_rate draws."""
        self.config = config
        self.replies.clear()
        self.fail_window = 0
        self.rng = random.Random(config.fail_seed)
        if self.history.maxlen != config.history_size:
            self.history = deque(self.history, maxlen=config.history_size)

    def reset(self, keep_config: bool) -> None:
        """Clear counters and history; restore the start-up config unless ``keep_config``."""
        self.total = 0
        self.streams = 0
        self.injected_failures = 0
        self.by_model: Counter[str] = Counter()
        self.by_path: Counter[str] = Counter()
        self.history.clear()
        self.prompt_cache.clear()
        self.set_config(self.config if keep_config else self.initial_config)

    def control_for(self, model: str, scope: Scope) -> tuple[RequestControl, str | None]:
        """Per-request overrides and the Authorization header value."""
        ctl = self.directives.get(model)
        if ctl is None:
            if len(self.directives) >= _DIRECTIVE_CACHE_SIZE:
                self.directives.clear()
            ctl = self.directives[model] = parse_model_directives(model)
        copied = False
        auth = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value.decode("latin-1")
            elif key.startswith(b"x-mock-"):
                if not copied:
                    ctl, copied = dataclasses.replace(ctl), True
                apply_header(ctl, key[7:].decode("latin-1"), value.decode("latin-1"))
        return ctl, auth

    def should_fail(self, model: str, ctl: RequestControl) -> int | None:
        """The status to inject for this request, if any."""
        if ctl.fail_status is not None:
            if ctl.fail_first_n and self.by_model[model] > ctl.fail_first_n:
                return None
            return ctl.fail_status
        cfg = self.config
        if cfg.fail_status is None or not cfg.fails_model(model):
            return None
        self.fail_window += 1
        if cfg.fail_first_n:
            if self.fail_window <= cfg.fail_first_n:
                return cfg.fail_status
            if not cfg.fail_rate:
                return None
        if cfg.fail_rate:
            return cfg.fail_status if self.rng.random() < cfg.fail_rate else None
        return cfg.fail_status

    def stats(self) -> dict[str, Any]:
        """The ``/_mock/stats`` document."""
        return {
            "total_requests": self.total,
            "stream_requests": self.streams,
            "injected_failures": self.injected_failures,
            "by_model": dict(self.by_model),
            "by_path": dict(self.by_path),
            "last_requests": [
                {
                    "path": path,
                    "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in headers},
                    "body": body,
                }
                for path, headers, body in self.history
            ],
            "config": self.config.model_dump(mode="json"),
        }


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]


async def _respond(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = _JSON
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MockApp:
    """The ASGI callable. ``state`` is the live :class:`MockState` (tests may read it)."""

    def __init__(self, config: MockConfig) -> None:
        self.state = MockState(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/v1/"):
            path = path[3:]
        method: str = scope["method"]
        if path == "/chat/completions" and method == "POST":
            await self._chat(scope, receive, send)
        elif path == "/embeddings" and method == "POST":
            await self._embeddings(scope, receive, send)
        elif path == "/responses" and method == "POST":
            await self._responses(scope, receive, send)
        elif path == "/messages" and method == "POST":
            await self._messages(scope, receive, send)
        elif path == "/health":
            await _respond(send, 200, b'{"status":"ok"}')
        elif path == "/models" and method == "GET":
            await self._models(scope, send)
        elif path.startswith("/_mock/"):
            await self._control(path, method, receive, send)
        else:
            self.state.by_path[path] += 1
            await _respond(send, 404, error_json(404, f"Unknown path {scope['path']}"))

    async def _models(self, scope: Scope, send: Send) -> None:
        self.state.by_path["/models"] += 1
        key = self.state.config.require_api_key
        if key is not None:
            auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if auth != f"Bearer {key}":
                await _respond(send, 401, error_json(401, "Incorrect API key provided."))
                return
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
            for m in self.state.config.models
        ]
        await _respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        state.by_path["/embeddings"] += 1
        raw = await _read_body(receive)
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError as exc:
            await _respond(send, 400, error_json(400, f"Malformed JSON in request body: {exc}"))
            return
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            await _respond(send, 400, error_json(400, "'model' must be a string", "model"))
            return
        if state.config.history_size:
            state.history.append((scope["path"], scope["headers"], body))
        key = state.config.require_api_key
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if key is not None and auth != f"Bearer {key}":
            await _respond(send, 401, error_json(401, "Incorrect API key provided."))
            return
        try:
            out = embeddings_body(body)
        except MockRequestError as exc:
            await _respond(send, 400, error_json(400, exc.message, exc.param))
            return
        await _respond(send, 200, orjson.dumps(out))

    async def _responses(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The native Responses endpoint (see :mod:`router.testing.mock_responses`)."""
        state = self.state
        state.by_path["/responses"] += 1
        raw = await _read_body(receive)
        if raw is None:
            await _respond(send, 413, error_json(413, "Request body too large"))
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            await _respond(send, 400, error_json(400, f"Malformed JSON in request body: {exc}"))
            return
        model = body.get("model") if isinstance(body, dict) else None
        state.total += 1
        if isinstance(model, str):
            state.by_model[model] += 1
        if state.config.history_size:
            state.history.append((scope["path"], scope["headers"], body))
        answer = responses_reply(raw, state.config)
        await _respond(send, answer.status, answer.body, _SSE if answer.sse else _JSON)

    async def _messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Anthropic's Messages API (``x-api-key`` auth), see :mod:`mock_messages`."""
        state = self.state
        state.total += 1
        state.by_path["/messages"] += 1
        raw = await _read_body(receive)
        try:
            body = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            body = None
        if state.config.history_size:
            state.history.append((scope["path"], scope["headers"], body))
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str):
            state.by_model[model] += 1
        key = state.config.require_api_key
        sent = dict(scope["headers"]).get(b"x-api-key", b"").decode("latin-1")
        ctl, _ = state.control_for(model if isinstance(model, str) else "", scope)
        out: bytes | list[SseEvent]
        if key is not None and sent != key:
            status, out = 401, anthropic_error(401, "invalid x-api-key")
        else:
            message_id = "msg_mock" + secrets.token_hex(10)
            cached = state.prompt_cache
            status, out = messages_answer(body, state.config, cached, message_id, ctl.reply_tokens)
        if isinstance(out, bytes):
            await _respond(send, status, out)
            return
        state.streams += 1
        await _stream(out, ctl, state.config, receive, send)

    async def _control(self, path: str, method: str, receive: Receive, send: Send) -> None:
        state = self.state
        raw = await _read_body(receive) if method == "POST" else b""
        try:
            patch = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            await _respond(send, 400, error_json(400, f"Malformed JSON: {exc}"))
            return
        if not isinstance(patch, dict):
            await _respond(send, 400, error_json(400, "Expected a JSON object"))
            return
        if path == "/_mock/stats" and method == "GET":
            await _respond(send, 200, orjson.dumps(state.stats()))
        elif path == "/_mock/reset" and method == "POST":
            state.reset(keep_config=bool(patch.get("keep_config", False)))
            await _respond(send, 200, orjson.dumps({"ok": True}))
        elif path == "/_mock/config" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    state.set_config(state.config.updated(patch))
                except ValidationError as exc:
                    await _respond(send, 400, error_json(400, f"Invalid mock config: {exc}"))
                    return
            await _respond(send, 200, orjson.dumps(state.config.model_dump(mode="json")))
        else:
            await _respond(send, 404, error_json(404, f"Unknown control path {path}"))

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        config = state.config
        raw = await _read_body(receive)
        if raw is None:
            await _respond(send, 413, error_json(413, "Request body too large"))
            return
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            state.by_path["/chat/completions"] += 1
            await _respond(send, 400, error_json(400, f"Malformed JSON in request body: {exc}"))
            return
        model = body.get("model") if isinstance(body, dict) else None
        state.total += 1
        state.by_path["/chat/completions"] += 1
        if config.history_size:
            state.history.append((scope["path"], scope["headers"], body))
        if not isinstance(model, str):
            await _respond(send, 400, error_json(400, "'model' must be a string", "model"))
            return
        state.by_model[model] += 1
        ctl, auth = state.control_for(model, scope)
        if config.require_api_key is not None and auth != f"Bearer {config.require_api_key}":
            await _respond(send, 401, error_json(401, "Incorrect API key provided."))
            return
        latency_ms = config.latency_ms if ctl.latency_ms is None else ctl.latency_ms
        if ctl.hang or config.hang:
            await receive()  # returns only when the client goes away
            return
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        status = state.should_fail(model, ctl)
        if status is not None:
            state.injected_failures += 1
            headers: Sequence[tuple[bytes, bytes]] = _JSON
            if status == 429:
                headers = [*_JSON, (b"retry-after", f"{config.retry_after_s:g}".encode())]
            message = f"Mock injected error {status} for model {model}"
            await _respond(send, status, error_json(status, message), headers)
            return
        reply = state.replies.get((raw, ctl.reply_tokens))
        if reply is None:
            try:
                reply = build_reply(body, config, ctl.reply_tokens)
            except MockRequestError as exc:
                await _respond(send, 400, error_json(400, exc.message, exc.param))
                return
            if len(state.replies) >= _REPLY_CACHE_SIZE:
                state.replies.clear()
            state.replies[raw, ctl.reply_tokens] = reply
        completion_id = "chatcmpl-mock" + secrets.token_hex(10)
        created = int(time.time())
        if body.get("stream") is not True:
            out = orjson.dumps(completion_body(reply, model, completion_id, created))
            await _respond(send, 200, out)
            return
        state.streams += 1
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        events = stream_events(reply, model, completion_id, created, include_usage)
        await _stream(events, ctl, config, receive, send)


async def _stream(
    events: list[SseEvent], ctl: RequestControl, config: MockConfig, receive: Receive, send: Send
) -> None:
    ttft_ms = config.ttft_ms if ctl.ttft_ms is None else ctl.ttft_ms
    tps = config.tokens_per_s if ctl.tokens_per_s is None else ctl.tokens_per_s
    cut = config.stream_cut_after if ctl.stream_cut_after is None else ctl.stream_cut_after
    if not ttft_ms and not tps and cut is None:
        await _respond(send, 200, b"".join(e.data for e in events), _SSE)
        return
    await send({"type": "http.response.start", "status": 200, "headers": _SSE})
    gone = asyncio.ensure_future(receive())
    try:
        start = time.perf_counter()
        first_token = True
        tokens_sent = 0
        for sent, event in enumerate(events):
            if cut is not None and sent >= cut:
                if config.stream_cut_mode == "error":
                    error = error_json(500, f"Mock stream cut after {cut} events")
                    await send({"type": "http.response.body", "body": b"data: " + error + b"\n\n"})
                    return
                if config.stream_cut_mode == "eof":
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                raise StreamCutError(f"stream cut after {cut} events")
            if event.is_token:
                if first_token and ttft_ms:
                    await asyncio.sleep(ttft_ms / 1000)
                    start = time.perf_counter()
                if tps:
                    delay = start + tokens_sent / tps - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                first_token = False
                tokens_sent += 1
            if gone.done():
                return
            await send({"type": "http.response.body", "body": event.data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def build_mock_app(config: MockConfig | None = None) -> MockApp:
    """Build the mock upstream's ASGI app (serve it with uvicorn, or see :mod:`mock_process`)."""
    return MockApp(config or MockConfig())
