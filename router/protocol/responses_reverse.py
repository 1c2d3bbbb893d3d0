"""The other direction: chat completions to a Responses request, and a Responses answer (whole
or streamed) to chat completions, for backends that speak Responses natively.

The pipeline works on chat completions (the cache, the guard, the ledger read them), so a
``backend: openai_responses`` model gets a Responses request (the client's own when it came
through ``/v1/responses`` unchanged, else this translation of the chat request) and its answer
is read back as a chat completion or chat chunks here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from router.protocol.chat_response import Usage


def _content_parts(content: Any, role: str) -> str | list[dict[str, Any]]:
    """Chat content as Responses content (``input_text``/``input_image``/``input_file``)."""
    if isinstance(content, str) or content is None:
        return content or ""
    text_type = "output_text" if role == "assistant" else "input_text"
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": text_type, "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            item = {"type": "input_image", "image_url": image.get("url")}
            if image.get("detail"):
                item["detail"] = image["detail"]
            parts.append(item)
        elif kind == "file":
            parts.append({"type": "input_file", **(part.get("file") or {})})
    return parts


def chat_to_responses(chat: dict[str, Any]) -> dict[str, Any]:
    """A Responses request body for a chat completions body (``model`` and ``stream`` kept)."""
    items: list[dict[str, Any]] = []
    for msg in chat.get("messages") or []:
        role = msg.get("role")
        if role == "tool":
            output = msg.get("content")
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": msg.get("tool_call_id"),
                    "output": output if isinstance(output, str) else str(output or ""),
                }
            )
            continue
        if role == "function":  # the deprecated form: no call id to answer
            continue
        role = "developer" if role == "system" else role
        content = msg.get("content")
        if content:
            items.append({"role": role, "content": _content_parts(content, str(role))})
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            items.append(
                {
                    "type": "function_call",
                    "call_id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": fn.get("arguments") or "",
                }
            )
    body: dict[str, Any] = {"model": chat.get("model"), "input": items, "store": False}
    body["stream"] = bool(chat.get("stream"))
    if chat.get("tools"):
        body["tools"] = [
            {"type": "function", **(t.get("function") or {})}
            for t in chat["tools"]
            if isinstance(t, dict)
        ]
    choice = chat.get("tool_choice")
    if isinstance(choice, dict):
        body["tool_choice"] = {
            "type": "function",
            "name": (choice.get("function") or {}).get("name"),
        }
    elif choice is not None:
        body["tool_choice"] = choice
    fmt = chat.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        body["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        body["text"] = {"format": {"type": "json_object"}}
    limit = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if limit is not None:
        body["max_output_tokens"] = limit
    if chat.get("reasoning_effort") is not None:
        body["reasoning"] = {"effort": chat["reasoning_effort"]}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "metadata"):
        if chat.get(name) is not None:
            body[name] = chat[name]
    return body


def usage_of(usage: Any) -> tuple[dict[str, Any] | None, Usage | None]:
    """Chat ``usage`` (and the gateway's :class:`Usage`) from a Responses ``usage``."""
    if not isinstance(usage, dict):
        return None, None
    p, c = usage.get("input_tokens"), usage.get("output_tokens")
    if not isinstance(p, int) or not isinstance(c, int):
        return None, None
    details = usage.get("input_tokens_details") or {}
    out_details = usage.get("output_tokens_details") or {}
    chat = {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": int(details.get("cached_tokens") or 0)},
        "completion_tokens_details": {
            "reasoning_tokens": int(out_details.get("reasoning_tokens") or 0)
        },
    }
    return chat, Usage(p, c)


def _finish_reason(answer: dict[str, Any], called: bool) -> str:
    reason = (answer.get("incomplete_details") or {}).get("reason")
    if reason == "max_output_tokens":
        return "length"
    if reason == "content_filter":
        return "content_filter"
    return "tool_calls" if called else "stop"


def responses_to_chat(answer: dict[str, Any]) -> tuple[dict[str, Any], Usage | None]:
    """A chat completion body (and its usage) for a whole Responses ``response`` object."""
    texts: list[str] = []
    reasoning: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in answer.get("output") or []:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            for part in item.get("content") or []:
                texts.append(part.get("text") or part.get("refusal") or "")
        elif kind == "reasoning":
            for part in item.get("content") or item.get("summary") or []:
                reasoning.append(part.get("text") or "")
        elif kind == "function_call":
            fn = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
            calls.append({"id": item.get("call_id"), "type": "function", "function": fn})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if calls:
        message["tool_calls"] = calls
    chat_usage, usage = usage_of(answer.get("usage"))
    body: dict[str, Any] = {
        "id": answer.get("id") or "",
        "object": "chat.completion",
        "created": int(answer.get("created_at") or time.time()),
        "model": answer.get("model") or "",
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(answer, bool(calls))}
        ],
    }
    if chat_usage is not None:
        body["usage"] = chat_usage
    return body, usage


@dataclass
class EventsToChunks:
    """Reads Responses stream events and produces chat chunk bodies (and the final usage)."""

    model: str
    response_id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))
    calls: dict[str, int] = field(default_factory=dict)
    """Output item id -> its chat ``tool_calls`` index."""
    done: bool = False
    usage: Usage | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.response_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def event(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        """The chat chunks for one Responses event (often none)."""
        kind = ev.get("type")
        if kind == "response.created":
            resp = ev.get("response") or {}
            self.response_id = str(resp.get("id") or "")
            self.model = str(resp.get("model") or self.model)
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": ev.get("delta", "")})]
        if kind in ("response.reasoning_text.delta", "response.reasoning_summary_text.delta"):
            return [self._chunk({"reasoning_content": ev.get("delta", "")})]
        if kind == "response.output_item.added":
            item = ev.get("item") or {}
            if item.get("type") != "function_call":
                return []
            index = len(self.calls)
            self.calls[str(item.get("id"))] = index
            fn = {"name": item.get("name"), "arguments": item.get("arguments") or ""}
            call = {"index": index, "id": item.get("call_id"), "type": "function", "function": fn}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "response.function_call_arguments.delta":
            known = self.calls.get(str(ev.get("item_id")))
            if known is None:
                return []
            call = {"index": known, "function": {"arguments": ev.get("delta", "")}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("response.completed", "response.incomplete"):
            self.done = True
            resp = ev.get("response") or {}
            finish = self._chunk({}, _finish_reason(resp, bool(self.calls)))
            chat_usage, self.usage = usage_of(resp.get("usage"))
            if chat_usage is None:
                return [finish]
            tail = {**self._chunk({}), "choices": [], "usage": chat_usage}
            return [finish, tail]
        return []
