"""Anthropic Messages responses from the chat pipeline's output.

:func:`message_from_completion` turns a chat completion into a ``Message``;
:class:`EventTranslator` turns the pipeline's chat SSE stream into Anthropic's events
(``message_start``, ``content_block_start``/``delta``/``stop``, ``message_delta`` with the stop
reason and the whole usage, ``message_stop``). Usage is read once, in :func:`anthropic_usage`:
Anthropic's ``input_tokens`` exclude the cached reads and writes that OpenAI's ``prompt_tokens``
include, so a client adding them up counts each prompt token once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from router.errors import RouterError

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
"""OpenAI ``finish_reason`` -> Anthropic ``stop_reason``."""

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
"""HTTP status -> Anthropic ``error.type`` (anything else is ``api_error``)."""

ANTHROPIC_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "billing_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "timeout_error",
        "api_error",
        "overloaded_error",
    }
)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def cache_token_counts(usage: dict[str, Any]) -> tuple[int, int]:
    """(cache reads, cache writes) of an OpenAI-shaped usage object, 0 when absent.

    Reads are OpenAI's ``prompt_tokens_details.cached_tokens`` (litellm puts Anthropic's
    ``cache_read_input_tokens`` there too); writes are litellm's ``cache_creation_input_tokens``.
    """
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _int(usage.get("cache_read_input_tokens")) or _int(details.get("cached_tokens"))
    write = _int(usage.get("cache_creation_input_tokens")) or _int(
        details.get("cache_creation_tokens")
    )
    return read, write


def anthropic_usage(usage: Any) -> dict[str, int]:
    """Anthropic's ``usage`` for an OpenAI ``usage`` object (zeros when it is missing)."""
    if not isinstance(usage, dict):
        usage = {}
    read, write = cache_token_counts(usage)
    prompt = _int(usage.get("prompt_tokens"))
    return {
        "input_tokens": max(prompt - read - write, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def _tool_input(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}  # what the model wrote, not silently dropped
    return value if isinstance(value, dict) else {"_value": value}


def _thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        out = []
        for b in blocks:
            if isinstance(b, dict) and b.get("type") == "redacted_thinking":
                out.append({"type": "redacted_thinking", "data": b.get("data", "")})
            elif isinstance(b, dict):
                out.append(
                    {
                        "type": "thinking",
                        "thinking": b.get("thinking") or "",
                        "signature": b.get("signature") or "",
                    }
                )
        return out
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        return [{"type": "thinking", "thinking": reasoning, "signature": ""}]
    return []


def message_from_completion(body: dict[str, Any], model: str, message_id: str) -> dict[str, Any]:
    """The Anthropic ``Message`` for a chat completion body (its first choice)."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = _thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, list):  # content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": _tool_input(function.get("arguments")),
            }
        )
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(body.get("usage")),
    }


def error_type_for(err: RouterError) -> str:
    """Anthropic's ``error.type`` for ``err``."""
    return ERROR_TYPES.get(err.status, "api_error")


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def sse(name: str, data: dict[str, Any]) -> bytes:
    """One named server-sent event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventTranslator:
    """Chat completion chunks in, Anthropic stream events out (one instance per stream)."""

    def __init__(self, model: str, message_id: str) -> None:
        self.model = model
        self.message_id = message_id
        self.started = False
        self.index = -1
        self.block: tuple[str, Any] | None = None
        """The open block's kind and identity (a tool call's index), None when none is open."""
        self.stop_reason: str | None = None
        self.usage: dict[str, int] | None = None
        self.failed = False

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # the chat stream's usage comes last: message_delta carries the real counts
            "usage": anthropic_usage(None),
        }
        return [sse("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if self.block is None:
            return []
        self.block = None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _open(self, kind: str, key: Any, block: dict[str, Any]) -> list[bytes]:
        if self.block == (kind, key):
            return []
        out = self._close()
        self.index += 1
        self.block = (kind, key)
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        out.append(sse("content_block_start", start))
        return out

    def _delta(self, delta: dict[str, Any]) -> bytes:
        data = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return sse("content_block_delta", data)

    def _thinking(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        blocks = delta.get("thinking_blocks")
        if isinstance(blocks, list) and blocks:
            for b in blocks:
                if not isinstance(b, dict):
                    continue
                if b.get("type") == "redacted_thinking":
                    block = {"type": "redacted_thinking", "data": b.get("data", "")}
                    out += self._open("redacted", self.index + 1, block)
                    out += self._close()
                    continue
                out += self._open(
                    "thinking", 0, {"type": "thinking", "thinking": "", "signature": ""}
                )
                if b.get("thinking"):
                    out.append(self._delta({"type": "thinking_delta", "thinking": b["thinking"]}))
                if b.get("signature"):
                    out.append(
                        self._delta({"type": "signature_delta", "signature": b["signature"]})
                    )
            return out
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            out += self._open("thinking", 0, {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta({"type": "thinking_delta", "thinking": reasoning}))
        return out

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        """Events for one chat chunk (or one error object of the chat stream)."""
        if isinstance(chunk.get("error"), dict):
            return self.fail(chunk["error"])
        out = self._start()
        if isinstance(chunk.get("usage"), dict):
            self.usage = anthropic_usage(chunk["usage"])
        choices = chunk.get("choices") or []
        choice = choices[0] if choices and isinstance(choices[0], dict) else None
        if choice is None:
            return out
        delta = choice.get("delta") or {}
        out += self._thinking(delta)
        text = delta.get("content")
        if isinstance(text, str) and text:
            out += self._open("text", 0, {"type": "text", "text": ""})
            out.append(self._delta({"type": "text_delta", "text": text}))
        for call in delta.get("tool_calls") or []:
            function = call.get("function") or {}
            key = call.get("index", 0)
            if call.get("id") or self.block != ("tool", key):
                block: dict[str, Any] = {
                    "type": "tool_use",
                    "id": call.get("id") or "",
                    "name": function.get("name") or "",
                    "input": {},
                }
                out += self._open("tool", key, block)
            arguments = function.get("arguments")
            if isinstance(arguments, str) and arguments:
                out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
        finish = choice.get("finish_reason")
        if finish:
            self.stop_reason = STOP_REASONS.get(finish, "end_turn")
        return out

    def fail(self, error: dict[str, Any]) -> list[bytes]:
        """An ``error`` event for the chat stream's error object; the stream ends after it."""
        self.failed = True
        kind = error.get("type")
        kind = kind if kind in ANTHROPIC_ERROR_TYPES else "api_error"
        message = str(error.get("message") or "The upstream failed mid-stream.")
        return [sse("error", error_body(kind, message))]

    def finish(self) -> list[bytes]:
        """The closing events (none after an error)."""
        if self.failed:
            return []
        out = self._start() + self._close()
        delta = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        usage = self.usage or anthropic_usage(None)
        out.append(sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return out


async def anthropic_events(
    chat_sse: AsyncIterator[bytes], model: str, message_id: str
) -> AsyncGenerator[bytes, None]:
    """Translate the pipeline's chat SSE stream (``data: {...}`` events, ``[DONE]``)."""
    translator = EventTranslator(model, message_id)
    buffer = b""
    try:
        async for piece in chat_sse:
            buffer += piece
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                for data in _payloads(raw):
                    for ev in translator.feed(data):
                        yield ev
        for ev in translator.finish():
            yield ev
    finally:
        # A client gone mid-stream closes this generator at a yield, where the pipeline's
        # stream is suspended: close it now so that it records and bills the request.
        aclose = getattr(chat_sse, "aclose", None)
        if aclose is not None:
            await aclose()


def _payloads(raw: bytes) -> list[dict[str, Any]]:
    """The JSON objects of one SSE event's ``data:`` lines (``[DONE]`` skipped)."""
    out = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            continue
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict):
            out.append(data)
    return out
