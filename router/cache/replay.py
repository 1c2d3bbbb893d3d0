"""Replaying a cached completion (JSON or SSE), and assembling a stream into a completion.

A hit is served at full speed: the whole body at once, or every SSE chunk back to back. Usage is
the original completion's (the tokens the answer is worth); the ledger records it as a hit with
zero cost and the saved cost. The replayed response gets a fresh ``id`` and ``created``.

:class:`StreamAssembler` is the inverse, for the store side of a streamed request: feed it every
chunk, and it returns the whole completion only when every choice finished, so a stream that was
cut off or ended in an error event is never cached.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson

from router.cache.entry import CacheHit
from router.protocol.chat_response import Chunk, Completion, Usage

PIECE_CHARS = 256
"""Largest content delta of a replayed stream (characters)."""
DONE = b"data: [DONE]\n\n"
_HEAD_KEYS = ("id", "created", "model", "system_fingerprint")
"""Completion fields taken from the first chunk that carries each."""


def _fresh_id() -> str:
    return f"chatcmpl-cache-{uuid.uuid4().hex[:24]}"


def _usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def replay_body(hit: CacheHit, completion_id: str | None = None) -> dict[str, Any]:
    """The JSON body to answer a non-streamed request with (a copy; safe to modify)."""
    body = copy.deepcopy(hit.entry.body)
    body["id"] = completion_id or _fresh_id()
    body["created"] = int(time.time())
    body.setdefault("object", "chat.completion")
    if hit.entry.usage is not None:
        body["usage"] = {**(body.get("usage") or {}), **_usage_dict(hit.entry.usage)}
    return body


def _pieces(text: str) -> Iterator[str]:
    """``text`` cut at whitespace into parts of at most about :data:`PIECE_CHARS` characters."""
    start = 0
    while start < len(text):
        end = min(len(text), start + PIECE_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + 1, end)
            end = cut if cut > start else end
        yield text[start:end]
        start = end


def replay_chunks(
    hit: CacheHit, include_usage: bool, completion_id: str | None = None
) -> Iterator[Chunk]:
    """The ``chat.completion.chunk`` sequence of the cached answer (no ``[DONE]``).

    Per choice: a role chunk, content deltas, tool calls (whole, one delta), then the
    finish chunk; with ``include_usage``, every chunk carries ``"usage": null`` and a last
    chunk with empty ``choices`` carries the usage, as OpenAI does.
    """
    body = hit.entry.body
    cid = completion_id or _fresh_id()
    created = int(time.time())
    model = body.get("model", hit.entry.model)
    base: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created}
    base["model"] = model
    if body.get("system_fingerprint"):
        base["system_fingerprint"] = body["system_fingerprint"]

    def chunk(choices: list[dict[str, Any]]) -> Chunk:
        data = {**base, "choices": choices}
        if include_usage:
            data["usage"] = None
        return Chunk(data=data)

    for choice in body.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        role = message.get("role", "assistant")
        yield chunk(
            [{"index": index, "delta": {"role": role, "content": ""}, "finish_reason": None}]
        )
        content = message.get("content")
        if isinstance(content, str):
            for piece in _pieces(content):
                yield chunk([{"index": index, "delta": {"content": piece}, "finish_reason": None}])
        if message.get("refusal"):
            delta = {"refusal": message["refusal"]}
            yield chunk([{"index": index, "delta": delta, "finish_reason": None}])
        if message.get("tool_calls"):
            calls = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
            delta = {"tool_calls": calls}
            yield chunk([{"index": index, "delta": delta, "finish_reason": None}])
        finish = choice.get("finish_reason") or "stop"
        yield chunk([{"index": index, "delta": {}, "finish_reason": finish}])
    if include_usage:
        usage = hit.entry.usage or Usage.from_openai(body.get("usage"))
        data = {**base, "choices": [], "usage": _usage_dict(usage) if usage else None}
        yield Chunk(data=data, usage=usage)


def sse_event(chunk: Chunk) -> bytes:
    """One ``data: {...}\\n\\n`` event."""
    return b"data: " + (chunk.raw or orjson.dumps(chunk.data)) + b"\n\n"


def replay_sse(hit: CacheHit, include_usage: bool) -> Iterator[bytes]:
    """The whole SSE response body of a replay, ``data: [DONE]`` included."""
    for c in replay_chunks(hit, include_usage):
        yield sse_event(c)
    yield DONE


class StreamAssembler:
    """Accumulates a stream's chunks into the completion it amounts to.

    Call :meth:`add` for every chunk, in order, then :meth:`completion`. Content and refusal
    deltas are concatenated, tool calls are merged by their ``index`` (arguments concatenated).
    """

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._head_missing: tuple[str, ...] = _HEAD_KEYS
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Usage | None = None
        self._failed = False

    def add(self, chunk: Chunk) -> None:
        """Fold one chunk in."""
        # Called for every chunk a stream relays, so the common chunk (one choice, a content
        # delta) takes as few lookups as it can; the result is the same as folding field by
        # field.
        data = chunk.data
        if "error" in data:
            self._failed = True
            return
        if self._head_missing:
            self._take_head(data)
        usage = chunk.usage
        if usage is None:
            raw_usage = data.get("usage")
            if raw_usage is not None:
                usage = Usage.from_openai(raw_usage)
        if usage is not None:
            self._usage = usage
        for ch in data.get("choices") or []:
            index = int(ch.get("index", 0))
            acc = self._choices.get(index)
            if acc is None:
                acc = {"role": "assistant", "content": [], "refusal": [], "tools": {}}
                self._choices[index] = acc
            delta = ch.get("delta")
            if delta:
                if delta.get("role"):
                    acc["role"] = delta["role"]
                content = delta.get("content")
                if isinstance(content, str):
                    acc["content"].append(content)
                if len(delta) > 1 or content is None:
                    self._add_rest(acc, delta)
            if ch.get("finish_reason"):
                acc["finish_reason"] = ch["finish_reason"]

    def _take_head(self, data: dict[str, Any]) -> None:
        """Keep the first value of each head field (id, created, model, system_fingerprint)."""
        missing = []
        for key in self._head_missing:
            if key in data:
                self._head[key] = data[key]
            else:
                missing.append(key)
        self._head_missing = tuple(missing)

    def _add_rest(self, acc: dict[str, Any], delta: dict[str, Any]) -> None:
        """The refusal and tool-call parts of a delta."""
        if isinstance(delta.get("refusal"), str):
            acc["refusal"].append(delta["refusal"])
        for call in delta.get("tool_calls") or []:
            self._merge_call(acc["tools"], call)

    @staticmethod
    def _merge_call(tools: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
        slot = tools.setdefault(
            int(call.get("index", len(tools))),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            slot["id"] = call["id"]
        if call.get("type"):
            slot["type"] = call["type"]
        fn = call.get("function") or {}
        if fn.get("name"):
            slot["function"]["name"] += fn["name"]
        if fn.get("arguments"):
            slot["function"]["arguments"] += fn["arguments"]

    def completion(self, model: str) -> Completion | None:
        """The whole completion, or None when the stream was cut off or carried an error.

        ``model`` is the policy name of the model that answered.
        """
        if self._failed or not self._choices:
            return None
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            if not acc.get("finish_reason"):
                return None
            message: dict[str, Any] = {"role": acc["role"], "content": "".join(acc["content"])}
            if acc["refusal"]:
                message["refusal"] = "".join(acc["refusal"])
            if acc["tools"]:
                message["tool_calls"] = [acc["tools"][i] for i in sorted(acc["tools"])]
                if not message["content"]:
                    message["content"] = None
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "finish_reason": acc["finish_reason"],
                    "logprobs": None,
                }
            )
        body: dict[str, Any] = {
            "id": self._head.get("id", _fresh_id()),
            "object": "chat.completion",
            "created": self._head.get("created", int(time.time())),
            "model": self._head.get("model", model),
            "choices": choices,
        }
        if self._head.get("system_fingerprint"):
            body["system_fingerprint"] = self._head["system_fingerprint"]
        if self._usage is not None:
            body["usage"] = _usage_dict(self._usage)
        return Completion(body=body, usage=self._usage, model=model)
