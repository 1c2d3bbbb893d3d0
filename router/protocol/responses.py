"""OpenAI Responses requests (``POST /v1/responses``) and their translation to chat completions.

The gateway serves the Responses API through its one chat pipeline: a request is validated
here, translated to a chat completions body (instructions and ``developer`` items become system
messages, items become messages, function and custom tools become chat functions), and the
chat answer is rendered back by :mod:`router.protocol.responses_render`.

What is accepted, translated, ignored or refused, field by field, is listed in
``docs/protocols.md``. Refusals are 400s that name the field (``input[2].type``), before
anything is routed or charged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from router.errors import InvalidRequest
from router.protocol.body import invalid_request_from, parse_json_object
from router.protocol.chat_request import ChatRequest

HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "web_search_2025_08_26",
        "file_search",
        "computer_use_preview",
        "computer",
        "code_interpreter",
        "image_generation",
        "mcp",
        "local_shell",
        "shell",
        "apply_patch",
        "tool_search",
    }
)
"""Tools that OpenAI runs on its own servers: a chat-completions upstream cannot run them, so
they are not offered to it (and named in the ``x-router-ignored`` header)."""

KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "max_output_tokens",
        "temperature",
        "top_p",
        "reasoning",
        "metadata",
        "stream",
        "stream_options",
        "store",
        "previous_response_id",
        "user",
        "include",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "service_tier",
        "truncation",
        "top_logprobs",
        "max_tool_calls",
        "client_metadata",
        "context_management",
        "background",
        "conversation",
        "prompt",
    }
)
"""Fields of the Responses API the gateway knows (read, passed on, or deliberately ignored)."""

REFUSED_FIELDS = {
    "conversation": "Conversations objects are not supported; use 'previous_response_id'.",
    "prompt": "Stored prompt templates are not supported; send 'instructions' and 'input'.",
}
"""Fields that change the meaning of a request in ways the gateway cannot honour."""

PASSED_THROUGH = ("user", "prompt_cache_key", "safety_identifier", "service_tier")
"""Responses fields that chat completions has under the same name and meaning."""


class TextFormat(BaseModel):
    """``text.format``: plain text, a JSON object, or a JSON schema."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    """``text``: the output format and verbosity."""

    model_config = ConfigDict(extra="allow")
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(BaseModel):
    """``reasoning``: effort is passed on as chat's ``reasoning_effort``."""

    model_config = ConfigDict(extra="allow")
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: str | None = None


class ResponsesRequest(BaseModel):
    """A ``POST /v1/responses`` body (items and tools are checked by :func:`translate`)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    model: Annotated[str, Field(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    reasoning: Reasoning | None = None
    metadata: dict[str, str] | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: Annotated[str, Field(min_length=1)] | None = None
    user: str | None = None
    background: bool | None = None
    truncation: Literal["auto", "disabled"] | None = None

    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    """The body as the client sent it (what a native Responses backend is sent)."""

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        # OpenAI's limits: 16 pairs, keys up to 64 characters, values up to 512.
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 key-value pairs are allowed")
        for key, value in v.items():
            if len(key) > 64 or len(value) > 512:
                raise ValueError("keys may have 64 characters and values 512")
        return v

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_mode(cls, v: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
        if isinstance(v, str) and v not in ("auto", "none", "required"):
            raise ValueError("must be 'auto', 'none', 'required' or an object")
        return v

    @property
    def stores(self) -> bool:
        """Whether the response is kept for ``previous_response_id`` and GET (default true)."""
        return self.store is not False

    def extra_fields(self) -> list[str]:
        """Names of fields outside the Responses API that the client sent."""
        return sorted(k for k in (self.model_extra or {}) if k not in KNOWN_FIELDS)


def _sent_view(chat: dict[str, Any]) -> bytes:
    """What a guard may rewrite in a chat body: its messages and ``user``."""
    return orjson.dumps([chat.get("messages"), chat.get("user")])


class ResponsesChatRequest(ChatRequest):
    """A chat request translated from ``/v1/responses``, carrying the client's own body for a
    backend that speaks Responses natively (``backend: openai_responses``)."""

    _native: dict[str, Any] | None = PrivateAttr(default=None)
    _translated: bytes = PrivateAttr(default=b"")

    def native_body(self) -> dict[str, Any] | None:
        """The client's Responses body, when it can be sent as is: it continued no stored
        response, and no stage changed the translated messages (a guard that redacted them
        must be obeyed, so then the redacted chat request is translated instead)."""
        if self._native is None or _sent_view(self.raw_body()) != self._translated:
            return None
        return self._native


@dataclass(frozen=True, slots=True)
class ToolNames:
    """How chat function names map back to Responses items in the answer."""

    custom: frozenset[str] = frozenset()
    """Custom (free-form) tools: a chat call's ``{"input": ...}`` becomes a ``custom_tool_call``."""
    namespaces: dict[str, str] = field(default_factory=dict)
    """Function name -> the ``namespace`` tool it came from."""


@dataclass(frozen=True, slots=True)
class Translation:
    """A Responses request as a chat completions body, with what rendering needs."""

    chat: ChatRequest
    history: list[dict[str, Any]]
    """The conversation's chat messages so far, without the instructions (what is stored)."""
    tools: ToolNames
    ignored: tuple[str, ...]
    """Fields the gateway did not act on, e.g. ``tools[8] (web_search)``."""


def parse_responses_request(body: bytes) -> ResponsesRequest:
    """Validate ``body`` strictly, raising :class:`InvalidRequest` that names the bad field."""
    req, raw = parse_json_object(body, ResponsesRequest)
    req._raw = dict(raw)
    for name, why in REFUSED_FIELDS.items():
        if raw.get(name) is not None:
            raise InvalidRequest(why, param=name, code="unsupported_parameter")
    if req.background:
        raise InvalidRequest(
            "Background responses are not supported; use 'stream' for long answers.",
            param="background",
            code="unsupported_parameter",
        )
    if req.truncation == "auto":
        raise InvalidRequest(
            "truncation 'auto' is not supported: the gateway never drops input items.",
            param="truncation",
            code="unsupported_value",
        )
    if req.input is None and req.previous_response_id is None:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    if isinstance(req.input, list) and not req.input and req.previous_response_id is None:
        raise InvalidRequest("'input' must not be empty.", param="input", code="empty_array")
    return req


def _bad(param: str, message: str, code: str = "invalid_value") -> InvalidRequest:
    return InvalidRequest(message, param=param, code=code)


def _str_field(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        if value is None:
            raise _bad(f"{where}.{name}", f"Missing required parameter: '{where}.{name}'.")
        raise _bad(f"{where}.{name}", f"Invalid value for '{where}.{name}': expected a string.")
    return value


def _text_of(parts: Any, where: str) -> str:
    """The text of a string or of text-only content parts (system, assistant, tool output)."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _bad(where, f"Invalid value for '{where}': expected a string or a list of parts.")
    texts = []
    for j, part in enumerate(parts):
        loc = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            texts.append(_str_field(part, "text", loc))
        elif kind == "refusal":
            texts.append(_str_field(part, "refusal", loc))
        else:
            raise _bad(
                f"{loc}.type",
                f"Invalid value for '{loc}.type': only text parts are allowed here (got {kind!r}).",
            )
    return "\n".join(texts)


def _user_content(parts: Any, where: str) -> str | list[dict[str, Any]]:
    """A user message's content as chat content: text, images and files."""
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _bad(where, f"Invalid value for '{where}': expected a string or a list of parts.")
    out: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        loc = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            out.append({"type": "text", "text": _str_field(part, "text", loc)})
        elif kind == "input_image":
            if not isinstance(part.get("image_url"), str):
                raise _bad(
                    f"{loc}.image_url",
                    f"'{loc}' needs an 'image_url' (URL or data URL); file ids are not supported.",
                    "unsupported_value",
                )
            image: dict[str, Any] = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        elif kind == "input_file":
            if not isinstance(part.get("file_data"), str):
                raise _bad(
                    f"{loc}.file_data",
                    f"'{loc}' needs 'file_data' (base64); file ids and URLs are not supported.",
                    "unsupported_value",
                )
            file: dict[str, Any] = {"file_data": part["file_data"]}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            out.append({"type": "file", "file": file})
        else:
            raise _bad(f"{loc}.type", f"Invalid value for '{loc}.type': got {kind!r}.")
    if len(out) == 1 and out[0]["type"] == "text":
        return str(out[0]["text"])
    return out


def _assistant_with_call(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message a function call item joins (a new one unless the last is one)."""
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        return last
    msg: dict[str, Any] = {"role": "assistant", "content": None}
    messages.append(msg)
    return msg


def _input_messages(items: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Translate ``input`` into chat messages (developer and system items become system)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if role == "user":
                messages.append(
                    {"role": "user", "content": _user_content(content, where + ".content")}
                )
            elif role in ("system", "developer"):
                # Chat upstreams other than OpenAI's (vLLM, llama.cpp, ...) know only "system";
                # OpenAI treats a developer message as the system message of newer models.
                messages.append(
                    {"role": "system", "content": _text_of(content, where + ".content")}
                )
            elif role == "assistant":
                messages.append(
                    {"role": "assistant", "content": _text_of(content, where + ".content")}
                )
            else:
                raise _bad(
                    f"{where}.role",
                    f"Invalid value for '{where}.role': expected 'user', 'assistant', 'system' "
                    f"or 'developer' (got {role!r}).",
                )
        elif kind in ("function_call", "custom_tool_call"):
            call_id = _str_field(item, "call_id", where)
            name = _str_field(item, "name", where)
            if kind == "function_call":
                arguments = _str_field(item, "arguments", where)
            else:
                arguments = orjson.dumps({"input": _str_field(item, "input", where)}).decode()
            msg = _assistant_with_call(messages)
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            msg.setdefault("tool_calls", []).append(call)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = _str_field(item, "call_id", where)
            output = _text_of(item.get("output"), where + ".output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            # The model's earlier reasoning (often encrypted for OpenAI's servers only): a chat
            # upstream has no field for it, and the answer it led to is in the next items.
            continue
        else:
            raise _bad(
                f"{where}.type",
                f"Input items of type {kind!r} are not supported (only messages, function and "
                "custom tool calls, their outputs, and reasoning items).",
                "unsupported_value",
            )
    return messages


def _chat_function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": _str_field(tool, "name", where)}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    params = tool.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise _bad(f"{where}.parameters", f"'{where}.parameters' must be a JSON schema object.")
    fn["parameters"] = params or {"type": "object", "properties": {}}
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _custom_function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A custom (free-form input) tool as a chat function taking one string, ``input``."""
    name = _str_field(tool, "name", where)
    description = tool.get("description")
    about = description if isinstance(description, str) else ""
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar":
        about += f"\n\nThe input must follow this {fmt.get('syntax', '')} grammar:\n"
        about += str(fmt.get("definition", ""))
    schema = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    fn: dict[str, Any] = {"name": name, "parameters": schema}
    if about:
        fn["description"] = about.strip()
    return {"type": "function", "function": fn}


def _tools(
    tools: list[dict[str, Any]], ignored: list[str]
) -> tuple[list[dict[str, Any]], ToolNames]:
    out: list[dict[str, Any]] = []
    custom: set[str] = set()
    namespaces: dict[str, str] = {}
    seen: set[str] = set()

    def add(tool: dict[str, Any], where: str, namespace: str | None) -> None:
        kind = tool.get("type")
        if kind == "function":
            chat = _chat_function(tool, where)
        elif kind == "custom":
            chat = _custom_function(tool, where)
            custom.add(chat["function"]["name"])
        elif isinstance(kind, str) and kind in HOSTED_TOOLS:
            ignored.append(f"{where} ({kind})")
            return
        else:
            raise _bad(
                f"{where}.type", f"Tools of type {kind!r} are not supported.", "unsupported_value"
            )
        name = chat["function"]["name"]
        if name in seen:
            raise _bad(f"{where}.name", f"Tool name {name!r} is defined twice.")
        seen.add(name)
        if namespace is not None:
            namespaces[name] = namespace
        out.append(chat)

    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if tool.get("type") == "namespace":
            ns = _str_field(tool, "name", where)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise _bad(f"{where}.tools", f"'{where}.tools' must be a list of tools.")
            for j, t in enumerate(inner):
                if not isinstance(t, dict):
                    raise _bad(f"{where}.tools[{j}]", f"'{where}.tools[{j}]' must be an object.")
                add(t, f"{where}.tools[{j}]", ns)
        else:
            add(tool, where, None)
    return out, ToolNames(custom=frozenset(custom), namespaces=namespaces)


def _tool_choice(
    choice: str | dict[str, Any], tools: list[dict[str, Any]]
) -> tuple[str | dict[str, Any], list[dict[str, Any]]]:
    """Chat's ``tool_choice`` (and the tools it leaves offered) for a Responses tool choice."""
    if isinstance(choice, str):
        return choice, tools
    kind = choice.get("type")
    names = {t["function"]["name"] for t in tools}
    if kind in ("function", "custom"):
        name = choice.get("name")
        if not isinstance(name, str) or name not in names:
            raise _bad("tool_choice.name", f"tool_choice names {name!r}, which is not in 'tools'.")
        return {"type": "function", "function": {"name": name}}, tools
    if kind == "allowed_tools":
        mode = choice.get("mode", "auto")
        allowed = choice.get("tools")
        if mode not in ("auto", "required") or not isinstance(allowed, list):
            raise _bad("tool_choice", "allowed_tools needs 'mode' (auto|required) and 'tools'.")
        wanted = {
            t["name"] for t in allowed if isinstance(t, dict) and isinstance(t.get("name"), str)
        }
        return mode, [t for t in tools if t["function"]["name"] in wanted]
    raise _bad(
        "tool_choice.type",
        f"tool_choice of type {kind!r} is not supported (hosted tools are not run).",
        "unsupported_value",
    )


def _response_format(fmt: TextFormat) -> dict[str, Any] | None:
    if fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.name is None:
        raise _bad("text.format.name", "Missing required parameter: 'text.format.name'.")
    if fmt.schema_ is None:
        raise _bad("text.format.schema", "Missing required parameter: 'text.format.schema'.")
    spec: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.description is not None:
        spec["description"] = fmt.description
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


def translate(req: ResponsesRequest, prior: list[dict[str, Any]]) -> Translation:
    """The chat completions request for ``req``, continuing the conversation ``prior``.

    ``prior`` holds the chat messages of the ``previous_response_id`` chain (its instructions
    excluded: as at OpenAI, instructions do not carry over to the next response).
    """
    ignored: list[str] = []
    history = [*prior, *(_input_messages(req.input) if req.input is not None else [])]
    if not history:
        raise _bad("input", "'input' must contain at least one message.", "empty_array")
    messages = list(history)
    if req.instructions:
        messages.insert(0, {"role": "system", "content": req.instructions})
    body: dict[str, Any] = {"model": req.model, "messages": messages, "stream": req.stream}
    if req.stream:  # the usage chunk fills response.completed's usage
        body["stream_options"] = {"include_usage": True}
    names = ToolNames()
    if req.tools:
        tools, names = _tools(req.tools, ignored)
        if req.tool_choice is not None:
            choice, tools = _tool_choice(req.tool_choice, tools)
            if tools:
                body["tool_choice"] = choice
        if tools:
            body["tools"] = tools
            if req.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = req.parallel_tool_calls
    elif isinstance(req.tool_choice, dict) or req.tool_choice == "required":
        raise _bad("tool_choice", "tool_choice needs 'tools'.")
    if req.text is not None and req.text.format is not None:
        fmt = _response_format(req.text.format)
        if fmt is not None:
            body["response_format"] = fmt
    if req.text is not None and req.text.verbosity is not None:
        body["verbosity"] = req.text.verbosity
    if req.reasoning is not None and req.reasoning.effort is not None:
        body["reasoning_effort"] = req.reasoning.effort
    sampling = {
        "max_completion_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
    }
    body.update({k: v for k, v in sampling.items() if v is not None})
    given = {**(req.model_extra or {}), "user": req.user}
    body.update({k: given[k] for k in PASSED_THROUGH if given.get(k) is not None})
    try:
        chat = ResponsesChatRequest.model_validate(body)
    except ValidationError as exc:  # a translated item the chat model refuses: name the field
        raise invalid_request_from(exc) from None
    chat._raw = body
    if not prior:  # a continued conversation exists only here: the upstream must see it whole
        chat._native = req._raw
        chat._translated = _sent_view(body)
    return Translation(chat=chat, history=history, tools=names, ignored=tuple(ignored))
