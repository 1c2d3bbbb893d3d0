"""Deterministic chat replies of the mock upstream, and their OpenAI wire shapes.

Pure functions, no I/O. The reply to a prompt depends only on the request body and the config,
so a test can compute what the mock will say. One "token" is one whitespace-led word of the
reply (or a short slice of tool-call arguments): streams send one token per content delta and
``usage.completion_tokens`` counts the same tokens, so streamed and plain usage agree.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from router.testing.mock_config import MockConfig
from router.testing.mock_judge import judge_reply
from router.testing.mock_schema import value_for_schema

FINGERPRINT = "fp_mock"
_TOKEN_RE = re.compile(r"\s*\S+")
_ARG_PIECE_CHARS = 6
_FILLER = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


class MockRequestError(ValueError):
    """A request the mock rejects with 400, naming the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolCallReply:
    """One function call the mock answers with."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChoiceReply:
    """One choice: either text content or a tool call, split into the tokens streams send."""

    content: str | None
    tokens: tuple[str, ...]
    tool_call: ToolCallReply | None
    finish_reason: str


class SseEvent(NamedTuple):
    """One encoded ``data: ...\\n\\n`` event; ``is_token`` marks events paced by tokens_per_s."""

    data: bytes
    is_token: bool


DONE_EVENT = SseEvent(b"data: [DONE]\n\n", is_token=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """Everything needed to render a completion or its stream."""

    choices: tuple[ChoiceReply, ...]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    """Prompt tokens reported as read from OpenAI's prompt cache (within ``prompt_tokens``)."""
    stream_parts: list[SseEvent] = field(default_factory=list, compare=False, repr=False)

    def usage(self) -> dict[str, Any]:
        """OpenAI's ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {
                "cached_tokens": min(self.cached_tokens, self.prompt_tokens),
                "audio_tokens": 0,
            },
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


# ---- prompt reading ----------------------------------------------------------------------------


def message_text(content: Any) -> str:
    """Text of a message's ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def last_user_text(messages: list[Any]) -> str:
    """Text of the last ``user`` message ("" when there is none)."""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return message_text(msg.get("content"))
    return ""


def last_turn(messages: list[Any]) -> Any:
    """The last message that is not a system turn (agents append system reminders after the
    user's turn); None when there is none."""
    for msg in reversed(messages):
        if not (isinstance(msg, dict) and msg.get("role") in ("system", "developer")):
            return msg
    return None


def count_prompt_tokens(messages: list[Any]) -> int:
    """``ceil(chars of all message text / 4) + 3 per message``."""
    chars = 0
    for msg in messages:
        if isinstance(msg, dict):
            chars += len(message_text(msg.get("content")))
    return math.ceil(chars / 4) + 3 * len(messages)


def tokenize(text: str) -> list[str]:
    """Split into whitespace-led words; ``"".join(tokenize(t)) == t.rstrip()``."""
    return _TOKEN_RE.findall(text)


def prompt_hash(prompt: str, index: int = 0) -> str:
    """Eight hex digits identifying a prompt (and a choice index above 0)."""
    key = prompt if index == 0 else f"{prompt}\x00{index}"
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def default_reply_text(prompt: str, index: int = 0) -> str:
    """``Mock reply <8 hex> to: <first 40 chars of the prompt>``."""
    snippet = " ".join(prompt.split())[:40]
    return f"Mock reply {prompt_hash(prompt, index)} to: {snippet}"


# ---- JSON output -------------------------------------------------------------------------------


def _json_content(text: str, response_format: Any) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return orjson.dumps({"reply": text}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            return orjson.dumps({"reply": text}).decode()
        return orjson.dumps(value_for_schema(schema, text)).decode()
    return None


# ---- tool calls --------------------------------------------------------------------------------


def _chosen_tool(body: dict[str, Any], messages: list[Any], prompt: str) -> dict[str, Any] | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    functions: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if not functions:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        return next((f for f in functions if f.get("name") == wanted), functions[0])
    last = last_turn(messages)
    asked = isinstance(last, dict) and last.get("role") == "user" and "call tool" in prompt.lower()
    if choice != "required" and not asked:
        return None
    lowered = prompt.lower()
    return next((f for f in functions if str(f.get("name", "")).lower() in lowered), functions[0])


def _tool_choice_reply(function: dict[str, Any], prompt: str, index: int) -> ChoiceReply:
    name = str(function.get("name", "tool"))
    snippet = " ".join(prompt.split())[:40]
    arguments = orjson.dumps(value_for_schema(function.get("parameters", {}), snippet)).decode()
    digest = hashlib.sha256(f"{prompt}\x00{name}\x00{index}".encode()).hexdigest()[:24]
    pieces = tuple(
        arguments[i : i + _ARG_PIECE_CHARS] for i in range(0, len(arguments), _ARG_PIECE_CHARS)
    )
    call = ToolCallReply(call_id=f"call_{digest}", name=name, arguments=arguments)
    return ChoiceReply(content=None, tokens=pieces, tool_call=call, finish_reason="tool_calls")


# ---- the reply ---------------------------------------------------------------------------------


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MockRequestError(f"'{name}' must be an integer in [{low}, {high}]", name)
    return value


def _stop_sequences(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s]
    raise MockRequestError("'stop' must be a string or a list of strings", "stop")


def _text_tokens(text: str, reply_tokens: int | None) -> list[str]:
    tokens = tokenize(text)
    if reply_tokens is None:
        return tokens
    i = 0
    while len(tokens) < reply_tokens:
        tokens.append(" " + _FILLER[i % len(_FILLER)])
        i += 1
    return tokens[:reply_tokens]


def _text_choice(
    text: str, stops: list[str], limit: int | None, reply_tokens: int | None
) -> ChoiceReply:
    tokens = _text_tokens(text, reply_tokens)
    full = "".join(tokens)
    finish = "stop"
    cuts = [i for i in (full.find(s) for s in stops) if i >= 0]
    if cuts:
        full = full[: min(cuts)]
        tokens = tokenize(full)
        full = "".join(tokens)
    if limit is not None and len(tokens) > limit:
        tokens = tokens[:limit]
        full = "".join(tokens)
        finish = "length"
    return ChoiceReply(content=full, tokens=tuple(tokens), tool_call=None, finish_reason=finish)


def build_reply(body: dict[str, Any], config: MockConfig, reply_tokens: int | None = None) -> Reply:
    """Compute the reply to a validated-shape chat request body.

    ``reply_tokens`` overrides ``config.reply_tokens`` (per-request control). Raises
    :class:`MockRequestError` for fields of the wrong type.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockRequestError("'messages' must be a non-empty array", "messages")
    n = _int_field(body, "n", 1, 128) or 1
    limit = _int_field(body, "max_completion_tokens", 1, 1 << 30)
    if limit is None:
        limit = _int_field(body, "max_tokens", 1, 1 << 30)
    stops = _stop_sequences(body)
    prompt = last_user_text(messages)
    length = reply_tokens if reply_tokens is not None else config.reply_tokens

    choices: list[ChoiceReply] = []
    tool = _chosen_tool(body, messages, prompt)
    canned = judge_reply(prompt, config.judge)
    if canned is None:
        canned = next((v for k, v in config.canned.items() if k in prompt), None)
    last = last_turn(messages)
    for index in range(n):
        if tool is not None:
            choice = _tool_choice_reply(tool, prompt, index)
            if limit is not None and len(choice.tokens) > limit:
                choice = ChoiceReply(None, choice.tokens[:limit], choice.tool_call, "length")
            choices.append(choice)
            continue
        if canned is not None:
            text = canned
        elif isinstance(last, dict) and last.get("role") == "tool":
            result = " ".join(message_text(last.get("content")).split())[:40]
            text = f"Mock reply {prompt_hash(prompt, index)} using tool result: {result}"
        else:
            text = default_reply_text(prompt, index)
        as_json = _json_content(text, body.get("response_format"))
        if as_json is not None:
            choices.append(_text_choice(as_json, [], limit, None))
        else:
            choices.append(_text_choice(text, stops, limit, length))

    completion = sum(len(c.tokens) for c in choices)
    return Reply(
        choices=tuple(choices),
        prompt_tokens=(
            config.prompt_tokens
            if config.prompt_tokens is not None
            else count_prompt_tokens(messages)
        ),
        completion_tokens=(
            config.completion_tokens if config.completion_tokens is not None else completion
        ),
        cached_tokens=config.cached_tokens,
    )


# ---- embeddings --------------------------------------------------------------------------------


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector for ``text`` (equal texts, equal vectors)."""
    raw = b""
    counter = 0
    while len(raw) < dimensions:
        raw += hashlib.sha256(f"{counter}\x00{text}".encode()).digest()
        counter += 1
    values = [b / 127.5 - 1.0 for b in raw[:dimensions]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embeddings_body(body: dict[str, Any], default_dimensions: int = 16) -> dict[str, Any]:
    """The ``/v1/embeddings`` response (``encoding_format`` float or base64)."""
    raw_input = body.get("input")
    inputs = [raw_input] if isinstance(raw_input, str) else raw_input
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise MockRequestError("'input' must be a string or a non-empty array of strings", "input")
    dimensions = _int_field(body, "dimensions", 1, 8192) or default_dimensions
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(math.ceil(len(t) / 4) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# ---- wire shapes -------------------------------------------------------------------------------


def _tool_call_json(call: ToolCallReply, arguments: str) -> dict[str, Any]:
    return {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def completion_body(reply: Reply, model: str, completion_id: str, created: int) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    choices = []
    for index, choice in enumerate(reply.choices):
        message: dict[str, Any] = {"role": "assistant", "content": choice.content, "refusal": None}
        if choice.tool_call is not None:
            message["tool_calls"] = [_tool_call_json(choice.tool_call, "".join(choice.tokens))]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
        "choices": choices,
        "usage": reply.usage(),
    }


def _choice_parts(reply: Reply) -> list[SseEvent]:
    """Encoded ``choices`` entries of every chunk (no envelope), role first, finish last."""
    dumps = orjson.dumps

    def part(index: int, delta: dict[str, Any], finish: str | None, token: bool) -> SseEvent:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return SseEvent(dumps(choice), token)

    parts: list[SseEvent] = []
    for index, choice in enumerate(reply.choices):
        call = choice.tool_call
        if call is None:
            delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        else:
            first = _tool_call_json(call, "")
            delta = {"role": "assistant", "content": None, "tool_calls": [{"index": 0, **first}]}
            delta["refusal"] = None
        parts.append(part(index, delta, None, False))
    longest = max((len(c.tokens) for c in reply.choices), default=0)
    for position in range(longest):
        for index, choice in enumerate(reply.choices):
            if position >= len(choice.tokens):
                continue
            piece = choice.tokens[position]
            if choice.tool_call is None:
                delta = {"content": piece}
            else:
                delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
            parts.append(part(index, delta, None, True))
    for index, choice in enumerate(reply.choices):
        parts.append(part(index, {}, choice.finish_reason, False))
    return parts


def stream_events(
    reply: Reply, model: str, completion_id: str, created: int, include_usage: bool
) -> list[SseEvent]:
    """All SSE events of a streamed completion, ending with ``data: [DONE]``.

    Order: a role delta per choice, token deltas (round-robin over choices), a finish chunk per
    choice, the usage chunk (empty ``choices``) when ``include_usage``, then ``[DONE]``. The
    encoded choice parts are kept on ``reply`` so a cached reply streams again cheaply.
    """
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
    }
    if include_usage:
        head["usage"] = None
    prefix = b"data: " + orjson.dumps(head)[:-1] + b',"choices":['
    if not reply.stream_parts:
        reply.stream_parts.extend(_choice_parts(reply))
    events = [SseEvent(prefix + p.data + b"]}\n\n", p.is_token) for p in reply.stream_parts]
    if include_usage:
        usage = {**head, "choices": [], "usage": reply.usage()}
        events.append(SseEvent(b"data: " + orjson.dumps(usage) + b"\n\n", False))
    events.append(DONE_EVENT)
    return events
