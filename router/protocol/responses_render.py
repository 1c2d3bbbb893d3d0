"""Chat completions answers rendered as OpenAI Responses: the response object and its events.

A whole completion becomes one ``response`` object (:func:`completed_response`); a chat SSE
stream becomes the typed events in OpenAI's order (:class:`EventTranslator`):
``response.created``, ``response.in_progress``, then per output item ``output_item.added``,
(``content_part.added``, text deltas, ``output_text.done``, ``content_part.done`` | argument
deltas, ``function_call_arguments.done``), ``output_item.done``, and last
``response.completed``, ``response.incomplete`` or ``response.failed``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from router.protocol.responses import ResponsesRequest, ToolNames, Translation

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Chat ``finish_reason`` values that leave a response ``incomplete``, and OpenAI's reason."""


def new_id(prefix: str) -> str:
    """An OpenAI-style object id: ``resp_``, ``msg_``, ``fc_``, ``rs_`` plus 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass(frozen=True, slots=True)
class ResponseMeta:
    """What a response echoes of its request, fixed when the request was parsed."""

    request: ResponsesRequest
    translation: Translation
    response_id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def tools(self) -> ToolNames:
        """How chat function names map back to Responses items."""
        return self.translation.tools


def usage_object(usage: Any) -> dict[str, Any] | None:
    """Responses ``usage`` from a chat ``usage`` object (``cost_usd`` kept when present)."""
    if not isinstance(usage, dict):
        return None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(p, int) or not isinstance(c, int):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    out: dict[str, Any] = {
        "input_tokens": p,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": c,
        "output_tokens_details": {
            "reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)
        },
        "total_tokens": p + c,
    }
    if isinstance(usage.get("cost_usd"), int | float):
        out["cost_usd"] = usage["cost_usd"]
    return out


def response_object(
    meta: ResponseMeta,
    *,
    status: str,
    output: list[dict[str, Any]],
    model: str | None = None,
    usage: dict[str, Any] | None = None,
    incomplete_reason: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``response`` object, echoing the request's settings as OpenAI does."""
    req = meta.request
    fmt: dict[str, Any] = {"type": "text"}
    if req.text is not None and req.text.format is not None:
        fmt = req.text.format.model_dump(by_alias=True, exclude_none=True)
    text: dict[str, Any] = {"format": fmt}
    if req.text is not None and req.text.verbosity is not None:
        text["verbosity"] = req.text.verbosity
    reasoning = req.reasoning.model_dump(exclude_none=True) if req.reasoning else {}
    return {
        "id": meta.response_id,
        "object": "response",
        "created_at": meta.created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {},
        "model": model or req.model,
        "output": output,
        "parallel_tool_calls": req.parallel_tool_calls is not False,
        "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": req.stores,
        "temperature": req.temperature,
        "text": text,
        "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
        "tools": req.tools or [],
        "top_p": req.top_p,
        "truncation": "disabled",
        "usage": usage,
        "user": req.user,
    }


def _call_item(names: ToolNames, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A chat tool call as a ``function_call`` or ``custom_tool_call`` output item."""
    if name in names.custom:
        try:
            parsed = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            parsed = None
        value = parsed.get("input") if isinstance(parsed, dict) else None
        item: dict[str, Any] = {
            "type": "custom_tool_call",
            "id": new_id("ctc"),
            "call_id": call_id,
            "name": name,
            "input": value if isinstance(value, str) else arguments,
            "status": "completed",
        }
    else:
        item = {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": call_id,
            "name": name,
            "arguments": arguments,
            "status": "completed",
        }
    if name in names.namespaces:
        item["namespace"] = names.namespaces[name]
    return item


def _message_item(text: str | None, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "type": "message",
        "id": new_id("msg"),
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _reasoning_item(text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": new_id("rs"),
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def reasoning_text(message: dict[str, Any]) -> str | None:
    """The reasoning a chat upstream returned (vLLM and DeepSeek's ``reasoning_content``)."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def completed_response(meta: ResponseMeta, completion: dict[str, Any]) -> dict[str, Any]:
    """The ``response`` object for a whole chat completion."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reason = INCOMPLETE_REASONS.get(str(choice.get("finish_reason")))
    item_status = "incomplete" if reason else "completed"
    output: list[dict[str, Any]] = []
    thought = reasoning_text(message)
    if thought:
        output.append(_reasoning_item(thought))
    text, refusal = message.get("content"), message.get("refusal")
    if text or refusal:
        output.append(_message_item(text, refusal, item_status))
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        output.append(
            _call_item(
                meta.tools, str(call.get("id")), str(fn.get("name")), fn.get("arguments", "")
            )
        )
    return response_object(
        meta,
        status="incomplete" if reason else "completed",
        output=output,
        model=completion.get("model"),
        usage=usage_object(completion.get("usage")),
        incomplete_reason=reason,
    )


def assistant_message(output: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The output items as one chat assistant message (what a follow-up request continues)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        if item["type"] == "message":
            for part in item["content"]:
                texts.append(part.get("text") or part.get("refusal") or "")
        elif item["type"] == "function_call":
            fn = {"name": item["name"], "arguments": item["arguments"]}
            calls.append({"id": item["call_id"], "type": "function", "function": fn})
        elif item["type"] == "custom_tool_call":
            args = orjson.dumps({"input": item["input"]}).decode()
            fn = {"name": item["name"], "arguments": args}
            calls.append({"id": item["call_id"], "type": "function", "function": fn})
    if not texts and not calls:
        return None
    msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        msg["tool_calls"] = calls
    return msg


def sse_event(payload: dict[str, Any]) -> bytes:
    """One server-sent event named after the payload's ``type``."""
    return (
        b"event: " + str(payload["type"]).encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"
    )


def chat_events(buffer: bytearray, data: bytes) -> Iterator[dict[str, Any] | None]:
    """Parse chat SSE bytes: each JSON event, None for ``[DONE]``; partial events stay buffered."""
    buffer.extend(data)
    while True:
        end = buffer.find(b"\n\n")
        if end < 0:
            return
        block = bytes(buffer[:end])
        del buffer[: end + 2]
        for line in block.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                yield None
            elif payload:
                parsed = orjson.loads(payload)
                if isinstance(parsed, dict):
                    yield parsed


@dataclass
class _Open:
    """The output item being streamed."""

    index: int
    item: dict[str, Any]
    part: str | None = None
    """``output_text``, ``refusal`` or ``reasoning_text``: the content part being streamed."""
    text: str = ""
    chat_index: int | None = None
    """For a tool call: its index among the chat chunk's ``tool_calls``."""


@dataclass
class EventTranslator:
    """Turns one chat completion stream into Responses events, in OpenAI's order."""

    meta: ResponseMeta
    sequence: int = 0
    output: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None
    final: dict[str, Any] | None = None
    """The last ``response`` object (completed, incomplete or failed), once the stream ended."""
    _open: _Open | None = None
    _calls: dict[int, dict[str, Any]] = field(default_factory=dict)

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return sse_event(payload)

    def start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``."""
        snapshot = response_object(self.meta, status="in_progress", output=[])
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    def _open_item(self, item: dict[str, Any]) -> list[bytes]:
        out = self._close()
        self._open = _Open(index=len(self.output), item=item)
        self.output.append(item)
        out.append(
            self._event("response.output_item.added", output_index=self._open.index, item=item)
        )
        return out

    def _part_event(self, suffix: str, **fields: Any) -> bytes:
        assert self._open is not None and self._open.part is not None
        kind = {
            "output_text": "output_text",
            "refusal": "refusal",
            "reasoning_text": "reasoning_text",
        }
        return self._event(
            f"response.{kind[self._open.part]}.{suffix}",
            item_id=self._open.item["id"],
            output_index=self._open.index,
            content_index=len(self._open.item["content"]) - 1,
            **fields,
        )

    def _part_json(self, part: str, text: str) -> dict[str, Any]:
        if part == "output_text":
            return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        if part == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "reasoning_text", "text": text}

    def _close_part(self) -> list[bytes]:
        o = self._open
        if o is None or o.part is None:
            return []
        part = self._part_json(o.part, o.text)
        o.item["content"][-1] = part
        # OpenAI's text done events carry (empty) logprobs; a refusal's names its own field
        if o.part == "output_text":
            done = [self._part_event("done", text=o.text, logprobs=[])]
        elif o.part == "refusal":
            done = [self._part_event("done", refusal=o.text)]
        else:
            done = [self._part_event("done", text=o.text)]
        done.append(
            self._event(
                "response.content_part.done",
                item_id=o.item["id"],
                output_index=o.index,
                content_index=len(o.item["content"]) - 1,
                part=part,
            )
        )
        o.part, o.text = None, ""
        return done

    def _text(self, kind: str, part: str, delta: str) -> list[bytes]:
        """A text delta for a message (``output_text``, ``refusal``) or reasoning item."""
        out: list[bytes] = []
        if self._open is None or self._open.item["type"] != kind:
            item = (
                _message_item(None, None, "in_progress")
                if kind == "message"
                else {"type": "reasoning", "id": new_id("rs"), "summary": [], "content": []}
            )
            out += self._open_item(item)
        o = self._open
        assert o is not None
        if o.part != part:
            out += self._close_part()
            o.part = part
            o.item["content"].append(self._part_json(part, ""))
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=o.item["id"],
                    output_index=o.index,
                    content_index=len(o.item["content"]) - 1,
                    part=self._part_json(part, ""),
                )
            )
        o.text += delta
        extra: dict[str, Any] = {"logprobs": []} if part == "output_text" else {}
        out.append(self._part_event("delta", delta=delta, **extra))
        return out

    def _tool_delta(self, call: dict[str, Any]) -> list[bytes]:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        out: list[bytes] = []
        o = self._open
        if index not in self._calls:
            name = str(fn.get("name") or "")
            item = _call_item(self.meta.tools, str(call.get("id") or new_id("call")), name, "")
            item["status"] = "in_progress"
            if item["type"] == "function_call":
                item["arguments"] = ""
            else:
                item["input"] = ""
            self._calls[index] = {"item": item, "arguments": ""}
            out += self._open_item(item)
            self._open.chat_index = index  # type: ignore[union-attr]
            o = self._open
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            self._calls[index]["arguments"] += args
            item = self._calls[index]["item"]
            # Custom tools' input arrives as the JSON of {"input": ...}: it is sent whole at the
            # end; a function's arguments are forwarded as they come.
            if item["type"] == "function_call" and o is not None and o.chat_index == index:
                item["arguments"] += args
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item["id"],
                        output_index=o.index,
                        delta=args,
                    )
                )
        return out

    def _close(self) -> list[bytes]:
        o = self._open
        if o is None:
            return []
        out = self._close_part()
        item = o.item
        if o.chat_index is not None:
            whole = self._calls[o.chat_index]["arguments"]
            done = _call_item(self.meta.tools, item["call_id"], item["name"], whole)
            if item["type"] == "function_call":
                item["arguments"] = whole
                out.append(
                    self._event(
                        "response.function_call_arguments.done",
                        item_id=item["id"],
                        output_index=o.index,
                        name=item["name"],
                        arguments=whole,
                    )
                )
            else:
                item["input"] = done["input"]
                for kind, extra in (
                    ("delta", {"delta": done["input"]}),
                    ("done", {"input": done["input"]}),
                ):
                    out.append(
                        self._event(
                            f"response.custom_tool_call_input.{kind}",
                            item_id=item["id"],
                            output_index=o.index,
                            **extra,
                        )
                    )
        item["status"] = "incomplete" if self.finish_reason in INCOMPLETE_REASONS else "completed"
        out.append(self._event("response.output_item.done", output_index=o.index, item=item))
        self._open = None
        return out

    def chunk(self, data: dict[str, Any]) -> list[bytes]:
        """Events for one chat chunk (content, reasoning, tool calls, finish, usage)."""
        if isinstance(data.get("model"), str) and self.model is None:
            self.model = data["model"]
        if data.get("usage") is not None:
            self.usage = usage_object(data["usage"]) or self.usage
        out: list[bytes] = []
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            thought = reasoning_text(delta)
            if thought:
                out += self._text("reasoning", "reasoning_text", thought)
            if isinstance(delta.get("content"), str) and delta["content"]:
                out += self._text("message", "output_text", delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                out += self._text("message", "refusal", delta["refusal"])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict):
                    out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return out

    def finish(self) -> list[bytes]:
        """Close the open item; ``response.completed`` (or ``response.incomplete``)."""
        out = self._close()
        reason = INCOMPLETE_REASONS.get(str(self.finish_reason))
        self.final = response_object(
            self.meta,
            status="incomplete" if reason else "completed",
            output=self.output,
            model=self.model,
            usage=self.usage,
            incomplete_reason=reason,
        )
        kind = "response.incomplete" if reason else "response.completed"
        out.append(self._event(kind, response=self.final))
        return out

    def fail(self, error: dict[str, Any]) -> list[bytes]:
        """``response.failed`` for a chat error event (the upstream broke off mid-stream)."""
        message = str(error.get("message") or "The upstream failed.")
        code = "rate_limit_exceeded" if error.get("type") == "rate_limit_error" else "server_error"
        self.final = response_object(
            self.meta,
            status="failed",
            output=self.output,
            model=self.model,
            usage=self.usage,
            error={"code": code, "message": message},
        )
        return [self._event("response.failed", response=self.final)]
