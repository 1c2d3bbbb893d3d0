"""The mock upstream's Anthropic Messages surface (``POST /v1/messages``), spoken natively.

A litellm ``anthropic/...`` model whose ``api_base`` is the mock calls this endpoint, so tests
see exactly what the gateway (through litellm) sends to Anthropic (``cache_control`` included)
and what it makes of Anthropic's usage. Replies are the chat mock's (:func:`build_reply` on an
equivalent chat body), so the reply to a prompt is the same on both surfaces.

Prompt caching is simulated: the prefix up to the last ``cache_control`` breakpoint (tools,
system, then messages, in Anthropic's order) is written to the cache the first time
(``cache_creation_input_tokens``) and read from it afterwards (``cache_read_input_tokens``);
``input_tokens`` are the rest. Every prompt token is counted in exactly one of the three.
Streams report the input side in ``message_start`` and the output tokens in ``message_delta``,
as Anthropic does.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from router.testing.mock_config import MockConfig
from router.testing.mock_replies import MockRequestError, Reply, SseEvent, build_reply

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


@dataclass(frozen=True, slots=True)
class CacheUse:
    """How the prompt's tokens split between fresh input and the prompt cache."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int

    def usage(self, output_tokens: int) -> dict[str, int]:
        """Anthropic's ``usage`` object."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "output_tokens": output_tokens,
        }


def _text_of(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        return ""
    if isinstance(block.get("text"), str):
        return str(block["text"])
    content = block.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(b) for b in content)
    return ""


def _blocks(content: Any) -> list[Any]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])


def prompt_items(body: dict[str, Any]) -> list[Any]:
    """Tools, system blocks, then message blocks: the order Anthropic caches prompts in."""
    items: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if system:
        items += _blocks(system)
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            items += _blocks(msg.get("content"))
    return items


def _tokens(items: list[Any]) -> int:
    return math.ceil(sum(len(orjson.dumps(i)) if "input_schema" in i else len(_text_of(i))
                         for i in items if isinstance(i, dict)) / 4)  # fmt: skip


def cache_use(body: dict[str, Any], cached: set[str]) -> CacheUse:
    """Split the prompt's tokens; records a new cache entry in ``cached`` (prefix digests)."""
    items = prompt_items(body)
    total = _tokens(items) + 3 * len(body.get("messages") or [])
    marks = [
        i for i, item in enumerate(items) if isinstance(item, dict) and item.get("cache_control")
    ]
    if not marks:
        return CacheUse(total, 0, 0)
    prefix = items[: marks[-1] + 1]
    digest = hashlib.sha256(orjson.dumps([body.get("model"), prefix])).hexdigest()
    size = min(_tokens(prefix), total)
    if digest in cached:
        return CacheUse(total - size, 0, size)
    cached.add(digest)
    return CacheUse(total - size, size, 0)


def chat_body(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body whose mock reply answers this Messages body."""
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise MockRequestError("messages: field required", "messages")
    if not isinstance(body.get("max_tokens"), int):
        raise MockRequestError("max_tokens: field required", "max_tokens")
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _text_of({"content": body["system"]})})
    for msg in body["messages"]:
        blocks = _blocks(msg.get("content"))
        for b in blocks:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                messages.append({"role": "tool", "content": _text_of(b)})
        texts = [_text_of(b) for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
        if texts or msg.get("role") == "assistant":
            messages.append({"role": msg.get("role"), "content": " ".join(texts)})
    out: dict[str, Any] = {"messages": messages, "max_tokens": body["max_tokens"]}
    tools = body.get("tools") or []
    out["tools"] = [
        {
            "type": "function",
            "function": {"name": t.get("name"), "parameters": t.get("input_schema")},
        }
        for t in tools
        if isinstance(t, dict)
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            out["tool_choice"] = {"function": {"name": choice.get("name")}}
        else:
            out["tool_choice"] = {"any": "required", "none": "none"}.get(str(kind), "auto")
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    return out


def _content(reply: Reply) -> list[dict[str, Any]]:
    choice = reply.choices[0]
    if choice.tool_call is not None:
        call = choice.tool_call
        return [
            {
                "type": "tool_use",
                "id": "toolu_" + call.call_id.removeprefix("call_"),
                "name": call.name,
                "input": orjson.loads(call.arguments),
            }
        ]
    return [{"type": "text", "text": choice.content or ""}]


def message_body(reply: Reply, model: str, message_id: str, use: CacheUse) -> dict[str, Any]:
    """The non-streamed ``Message``."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": _content(reply),
        "stop_reason": STOP_REASONS.get(reply.choices[0].finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": use.usage(reply.completion_tokens),
    }


def _event(name: str, data: dict[str, Any], token: bool = False) -> SseEvent:
    return SseEvent(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n", token)


def message_events(reply: Reply, model: str, message_id: str, use: CacheUse) -> list[SseEvent]:
    """The streamed events: input usage in message_start, output usage in message_delta."""
    message = message_body(reply, model, message_id, use)
    start = {**message, "content": [], "stop_reason": None, "usage": use.usage(1)}
    events = [_event("message_start", {"type": "message_start", "message": start})]
    choice = reply.choices[0]
    block = message["content"][0]
    if block["type"] == "tool_use":
        first = {**block, "input": {}}
        pieces = [("input_json_delta", "partial_json", t) for t in choice.tokens]
    else:
        first = {"type": "text", "text": ""}
        pieces = [("text_delta", "text", t) for t in choice.tokens]
    events.append(
        _event(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": first},
        )
    )
    for kind, field, piece in pieces:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": kind, field: piece}}
        events.append(_event("content_block_delta", delta, token=True))
    events.append(_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    usage = {"output_tokens": reply.completion_tokens}
    events.append(
        _event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
    )
    events.append(_event("message_stop", {"type": "message_stop"}))
    return events


def anthropic_error(status: int, message: str) -> bytes:
    """Anthropic's error body."""
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "api_error"
    )
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def answer(
    body: Any, config: MockConfig, cached: set[str], message_id: str, reply_tokens: int | None
) -> tuple[int, bytes | list[SseEvent]]:
    """(status, a JSON body or the stream's events) for one Messages request body."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return 400, anthropic_error(400, "model: field required")
    try:
        reply = build_reply(chat_body(body), config, reply_tokens)
    except MockRequestError as exc:
        return 400, anthropic_error(400, exc.message)
    use = cache_use(body, cached)
    if config.prompt_tokens is not None:  # a pinned prompt size keeps its cache split
        fresh = max(
            config.prompt_tokens - use.cache_read_input_tokens - use.cache_creation_input_tokens, 0
        )
        use = CacheUse(fresh, use.cache_creation_input_tokens, use.cache_read_input_tokens)
    model = body["model"]
    if body.get("stream") is True:
        return 200, message_events(reply, model, message_id, use)
    return 200, orjson.dumps(message_body(reply, model, message_id, use))
