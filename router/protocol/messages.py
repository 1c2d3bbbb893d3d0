"""Anthropic Messages (``POST /v1/messages``): request models and their translation to chat.

The request is validated here (strictly, as the chat endpoint validates its own) and turned into
an OpenAI chat request for the one pipeline. The translation keeps what an Anthropic upstream
needs to see again unchanged, in the form litellm's Anthropic provider turns back into Anthropic
blocks: ``cache_control`` on text, image and tool-result parts, on system blocks and on tools;
``thinking`` and ``redacted_thinking`` blocks as the assistant message's ``thinking_blocks``
(signature included); images as ``image_url`` parts (base64 as a ``data:`` URL). Any other
target gets the same OpenAI chat request, which is the faithful translation for it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from router.errors import InvalidRequest
from router.protocol.body import invalid_request_from
from router.protocol.chat_request import ChatRequest
from router.protocol.jsonsafe import check_numbers

BlockType = Literal[
    "text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking"
]
MAX_STOP_SEQUENCES = 4
"""The chat pipeline carries OpenAI's limit of four stop sequences."""
SOURCE_FIELD = "x_router_protocol"
"""A top-level field of the translated body marking it as translated from Messages. It survives
the copies the pipeline makes of the body (the guard's redaction); the litellm backend forwards
only the fields it knows, and the OpenAI-compatible backend sends :func:`openai_body` instead."""
SOURCE = "anthropic-messages"


class CacheControl(BaseModel):
    """A prompt-cache breakpoint (``{"type": "ephemeral", "ttl": "5m" | "1h"}``)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["ephemeral"]
    ttl: str | None = None


class Block(BaseModel):
    """One content block. Which fields a type needs is checked by the translation."""

    model_config = ConfigDict(extra="allow")
    type: BlockType
    text: str | None = None
    source: dict[str, Any] | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    cache_control: CacheControl | None = None


class MessageParam(BaseModel):
    """One turn of the conversation (``system``: a mid-conversation system turn of text)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class ToolParam(BaseModel):
    """A client tool (``type`` absent or ``custom``); server tools are refused."""

    model_config = ConfigDict(extra="allow")
    name: Annotated[str, Field(min_length=1, max_length=128)]
    description: str | None = None
    input_schema: dict[str, Any]
    type: str | None = None
    cache_control: CacheControl | None = None


class ToolChoice(BaseModel):
    """``auto``, ``any``, ``tool`` (with ``name``) or ``none``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingParam(BaseModel):
    """Extended thinking: ``enabled`` with a budget, ``disabled`` or ``adaptive``."""

    model_config = ConfigDict(extra="allow")
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: Annotated[int, Field(ge=1)] | None = None


class Metadata(BaseModel):
    """``metadata.user_id``: an opaque end-user id (becomes the chat request's ``user``)."""

    model_config = ConfigDict(extra="allow")
    user_id: str | None = None


class CountTokensRequest(BaseModel):
    """A ``POST /v1/messages/count_tokens`` body."""

    model_config = ConfigDict(extra="allow")
    model: Annotated[str, Field(min_length=1)]
    messages: Annotated[list[MessageParam], Field(min_length=1)]
    system: str | list[Block] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingParam | None = None
    cache_control: CacheControl | None = None
    """Automatic caching: Anthropic puts the breakpoint on the last cacheable block."""


class MessagesRequest(CountTokensRequest):
    """A ``POST /v1/messages`` body."""

    max_tokens: Annotated[int, Field(ge=1)]
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    top_k: Annotated[int, Field(ge=0)] | None = None
    metadata: Metadata | None = None
    service_tier: str | None = None


def _load(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    check_numbers(body)
    return raw


def _invalid(exc: ValidationError) -> InvalidRequest:
    """A 400 naming the deepest failing field.

    A union (``content``: a string or blocks) fails once per member; the member that got
    furthest into the value names the field the client got wrong.
    """
    errors = exc.errors(include_url=False)
    deepest = max(range(len(errors)), key=lambda i: (len(errors[i]["loc"]), -i))
    return invalid_request_from(ValidationError.from_exception_data(exc.title, [errors[deepest]]))  # type: ignore[list-item]


def parse_messages_request(body: bytes) -> MessagesRequest:
    """Validate a Messages body, raising :class:`InvalidRequest` that names the bad field."""
    _load(body)
    try:
        return MessagesRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


def parse_count_tokens_request(body: bytes) -> CountTokensRequest:
    """Validate a count_tokens body, raising :class:`InvalidRequest` that names the bad field."""
    _load(body)
    try:
        return CountTokensRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise _invalid(exc) from None


# ---- translation -------------------------------------------------------------------------------


def _need(value: Any, param: str, kind: str) -> Any:
    if value is None:
        raise InvalidRequest(
            f"Missing required parameter: '{param}' (for a '{kind}' block).",
            param=param,
            code="missing_required_parameter",
        )
    return value


def _cached(part: dict[str, Any], block: Block) -> dict[str, Any]:
    """``part`` with the block's ``cache_control``, as litellm passes it to Anthropic."""
    if block.cache_control is not None:
        part["cache_control"] = block.cache_control.model_dump(exclude_none=True)
    return part


def _image_part(block: Block, where: str) -> dict[str, Any]:
    source = _need(block.source, f"{where}.source", "image")
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise InvalidRequest(
                "A base64 image source needs string 'media_type' and 'data'.",
                param=f"{where}.source",
                code="invalid_value",
            )
        url = f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise InvalidRequest(
            "An image source must be {'type': 'base64', 'media_type', 'data'} or "
            "{'type': 'url', 'url'}.",
            param=f"{where}.source.type",
            code="invalid_value",
        )
    return _cached({"type": "image_url", "image_url": {"url": url}}, block)


def _document_part(block: Block, where: str) -> dict[str, Any]:
    source = _need(block.source, f"{where}.source", "document")
    kind = source.get("type")
    if kind == "text" and isinstance(source.get("data"), str):
        return _cached({"type": "text", "text": source["data"]}, block)
    if kind == "base64" and isinstance(source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        file = {"file_data": f"data:{media};base64,{source['data']}"}
        return _cached({"type": "file", "file": file}, block)
    raise InvalidRequest(
        "A document source must be {'type': 'base64', 'media_type', 'data'} or "
        "{'type': 'text', 'data'}.",
        param=f"{where}.source.type",
        code="invalid_value",
    )


def _user_part(block: Block, where: str) -> dict[str, Any]:
    if block.type == "text":
        return _cached({"type": "text", "text": _need(block.text, f"{where}.text", "text")}, block)
    if block.type == "image":
        return _image_part(block, where)
    if block.type == "document":
        return _document_part(block, where)
    raise InvalidRequest(
        f"A '{block.type}' block is not allowed in a user message.",
        param=f"{where}.type",
        code="invalid_value",
    )


def _tool_message(block: Block, where: str) -> dict[str, Any]:
    call_id = _need(block.tool_use_id, f"{where}.tool_use_id", "tool_result")
    content: str | list[dict[str, Any]]
    if block.content is None or isinstance(block.content, str):
        content = block.content or ""
        if block.cache_control is not None:
            content = [_cached({"type": "text", "text": content}, block)]
    else:
        content = [
            _user_part(inner, f"{where}.content[{i}]") for i, inner in enumerate(block.content)
        ]
        if block.cache_control is not None and content:
            _cached(content[-1], block)
    if block.is_error:
        # OpenAI's tool message has no error flag: say it in the text the model reads.
        prefix = {"type": "text", "text": "[tool error]"}
        content = [prefix, *content] if isinstance(content, list) else f"[tool error] {content}"
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _user_messages(msg: MessageParam, where: str) -> list[dict[str, Any]]:
    """A user turn: its tool results first (OpenAI wants them right after the tool calls)."""
    if isinstance(msg.content, str):
        return [{"role": "user", "content": msg.content}]
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(msg.content):
        at = f"{where}.content[{i}]"
        if block.type == "tool_result":
            tools.append(_tool_message(block, at))
        else:
            parts.append(_user_part(block, at))
    out = tools
    if parts or not tools:
        out.append({"role": "user", "content": parts})
    return out


def _assistant_message(msg: MessageParam, where: str) -> dict[str, Any]:
    if isinstance(msg.content, str):
        return {"role": "assistant", "content": msg.content}
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for i, block in enumerate(msg.content):
        at = f"{where}.content[{i}]"
        if block.type == "text":
            parts.append(
                _cached({"type": "text", "text": _need(block.text, f"{at}.text", "text")}, block)
            )
        elif block.type == "tool_use":
            call_id = _need(block.id, f"{at}.id", "tool_use")
            name = _need(block.name, f"{at}.name", "tool_use")
            arguments = orjson.dumps(_need(block.input, f"{at}.input", "tool_use")).decode()
            call = {"id": call_id, "type": "function", "function": {"name": name}}
            call["function"]["arguments"] = arguments
            calls.append(_cached(call, block))
        elif block.type in ("thinking", "redacted_thinking"):
            # kept whole, signature included: Anthropic verifies it on the next turn
            thinking.append(block.model_dump(exclude_none=True))
        else:
            raise InvalidRequest(
                f"A '{block.type}' block is not allowed in an assistant message.",
                param=f"{at}.type",
                code="invalid_value",
            )
    out: dict[str, Any] = {"role": "assistant", "content": parts or None}
    if calls:
        out["tool_calls"] = calls
    if thinking:
        out["thinking_blocks"] = thinking
    return out


def _system_message(system: str | list[Block], where: str = "system") -> dict[str, Any]:
    if isinstance(system, str):
        return {"role": "system", "content": system}
    parts = []
    for i, block in enumerate(system):
        if block.type != "text":
            raise InvalidRequest(
                "System blocks must be 'text' blocks.",
                param=f"{where}[{i}].type",
                code="invalid_value",
            )
        text = _need(block.text, f"{where}[{i}].text", "text")
        parts.append(_cached({"type": "text", "text": text}, block))
    return {"role": "system", "content": parts}


def _tool(tool: ToolParam, where: str) -> dict[str, Any]:
    if tool.type not in (None, "custom"):
        raise InvalidRequest(
            f"Server tools ('{tool.type}') are not supported by this gateway; "
            "define the tool with an input_schema instead.",
            param=f"{where}.type",
            code="invalid_value",
        )
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    out: dict[str, Any] = {"type": "function", "function": function}
    if tool.cache_control is not None:
        out["cache_control"] = tool.cache_control.model_dump(exclude_none=True)
    return out


def _tool_choice(choice: ToolChoice) -> tuple[str | dict[str, Any], bool | None]:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls`` for an Anthropic tool_choice."""
    parallel = (
        None if choice.disable_parallel_tool_use is None else not (choice.disable_parallel_tool_use)
    )
    if choice.type == "tool":
        name = _need(choice.name, "tool_choice.name", "tool")
        return {"type": "function", "function": {"name": name}}, parallel
    return {"auto": "auto", "any": "required", "none": "none"}[choice.type], parallel


def chat_messages(req: CountTokensRequest) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat messages (system first)."""
    out: list[dict[str, Any]] = []
    if req.system is not None and req.system != "" and req.system != []:
        out.append(_system_message(req.system))
    for i, msg in enumerate(req.messages):
        where = f"messages[{i}]"
        if msg.role == "user":
            out.extend(_user_messages(msg, where))
        elif msg.role == "system":
            out.append(_system_message(msg.content, f"{where}.content"))
        else:
            out.append(_assistant_message(msg, where))
    return out


def chat_body(req: CountTokensRequest) -> dict[str, Any]:
    """The OpenAI chat request body for ``req`` (a count_tokens body gets no sampling fields)."""
    body: dict[str, Any] = {
        "model": req.model,
        "messages": chat_messages(req),
        SOURCE_FIELD: SOURCE,
    }
    if req.tools:
        body["tools"] = [_tool(t, f"tools[{i}]") for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        body["tool_choice"], parallel = _tool_choice(req.tool_choice)
        if parallel is not None and req.tools:
            body["parallel_tool_calls"] = parallel
    if req.thinking is not None:
        body["thinking"] = req.thinking.model_dump(exclude_none=True)
    if req.cache_control is not None:
        body["cache_control"] = req.cache_control.model_dump(exclude_none=True)
    if not isinstance(req, MessagesRequest):
        return body
    body["max_tokens"] = req.max_tokens
    if req.stream:
        body["stream"] = True
        # the message_delta event carries the usage: always ask the pipeline for it
        body["stream_options"] = {"include_usage": True}
    if req.stop_sequences:
        if len(req.stop_sequences) > MAX_STOP_SEQUENCES:
            raise InvalidRequest(
                f"At most {MAX_STOP_SEQUENCES} stop_sequences are supported.",
                param="stop_sequences",
                code="invalid_value",
            )
        body["stop"] = list(req.stop_sequences)
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.metadata is not None and req.metadata.user_id is not None:
        body["user"] = req.metadata.user_id
    return body


def to_chat_request(req: CountTokensRequest) -> ChatRequest:
    """The pipeline's request for ``req``; the raw body keeps the Anthropic-only fields."""
    body = chat_body(req)
    try:
        chat = ChatRequest.model_validate(body)
    except ValidationError as exc:  # a translated value the chat model refuses
        raise invalid_request_from(exc) from None
    chat._raw = body
    return chat


def _without_cache_control(item: Any) -> Any:
    if not isinstance(item, dict) or "cache_control" not in item:
        return item
    return {k: v for k, v in item.items() if k != "cache_control"}


def openai_body(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without what only Anthropic reads, for an OpenAI-compatible upstream.

    Drops the marker, ``thinking``, top-level and per-block ``cache_control`` and the assistant
    turns' ``thinking_blocks`` (OpenAI refuses fields it does not know); the rest is already
    OpenAI's chat request. A body not translated from Messages is returned as it is.
    """
    if SOURCE_FIELD not in body:
        return body
    drop = (SOURCE_FIELD, "thinking", "cache_control")
    out = {k: v for k, v in body.items() if k not in drop}
    messages = []
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            messages.append(msg)
            continue
        msg = {k: v for k, v in msg.items() if k != "thinking_blocks"}
        if isinstance(msg.get("content"), list):
            msg["content"] = [_without_cache_control(p) for p in msg["content"]]
        if isinstance(msg.get("tool_calls"), list):
            msg["tool_calls"] = [_without_cache_control(c) for c in msg["tool_calls"]]
        messages.append(msg)
    out["messages"] = messages
    if isinstance(body.get("tools"), list):
        out["tools"] = [_without_cache_control(t) for t in body["tools"]]
    return out
