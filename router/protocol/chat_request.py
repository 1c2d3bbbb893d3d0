"""OpenAI wire models for the chat completions request.

The request model validates the fields the gateway reads or that a client gets wrong often, and
keeps every other field (``extra="allow"``) so that provider-specific parameters (vLLM's
``top_k``, ``repetition_penalty``, ...) still reach an OpenAI-compatible upstream.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from router.protocol.body import parse_json_object

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ContentPart(BaseModel):
    """One part of a multi-part message (``text``, ``image_url``, ``input_audio``, ``file``)."""

    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="allow")
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text, with the text parts of a multi-part message joined."""
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "\n".join(p.text for p in self.content if p.text)

    def has_image(self) -> bool:
        """Whether the message carries an image part."""
        return isinstance(self.content, list) and any(p.type == "image_url" for p in self.content)


class FunctionDef(BaseModel):
    """A tool's function definition."""

    model_config = ConfigDict(extra="allow")
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(BaseModel):
    """A tool the model may call."""

    model_config = ConfigDict(extra="allow")
    type: str = "function"
    function: FunctionDef


class StreamOptions(BaseModel):
    """``stream_options``: whether the client wants the final usage chunk."""

    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ResponseFormat(BaseModel):
    """``response_format``: text, a JSON object, or a JSON schema."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


KNOWN_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "temperature",
        "top_p",
        "n",
        "stop",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "tools",
        "tool_choice",
        "response_format",
        "user",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "parallel_tool_calls",
        "metadata",
        "store",
        "reasoning_effort",
        "modalities",
        "prediction",
        "audio",
        "service_tier",
        "functions",
        "function_call",
    }
)
"""Fields of OpenAI's chat completions API; anything else is an extra the gateway logs."""


class ChatRequest(BaseModel):
    """A ``POST /v1/chat/completions`` body."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[str, Field(min_length=1, description="auto, a route or a model")]
    messages: Annotated[list[Message], Field(min_length=1)]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    stop: str | list[str] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    seed: int | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    user: str | None = None

    _raw: dict[str, Any] | None = PrivateAttr(default=None)

    def raw_body(self) -> dict[str, Any]:
        """The body as the client sent it (nulls and unknown fields included)."""
        # Read from pydantic's private dict itself: ``self._raw`` goes through
        # BaseModel.__getattr__ (~3 us), and this runs several times a request.
        private = self.__pydantic_private__
        raw: dict[str, Any] | None = private.get("_raw") if private is not None else None
        if raw is None:
            raw = self._raw = self.model_dump(exclude_unset=True)
        return raw

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return v

    @property
    def include_usage(self) -> bool:
        """Whether the client asked for the final usage chunk of a stream."""
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def output_limit(self) -> int | None:
        """The client's cap on generated tokens, from either field name."""
        return self.max_completion_tokens or self.max_tokens

    def extra_fields(self) -> list[str]:
        """Names of fields outside OpenAI's API that the client sent."""
        return sorted(k for k in (self.model_extra or {}) if k not in KNOWN_FIELDS)

    def wants_json_schema(self) -> bool:
        """Whether the request needs structured outputs (``response_format.type=json_schema``)."""
        return self.response_format is not None and self.response_format.type == "json_schema"

    def has_images(self) -> bool:
        """Whether any message carries an image."""
        return any(m.has_image() for m in self.messages)

    def last_user_text(self) -> str:
        """The text of the last user message (empty when there is none)."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text()
        return ""

    def prompt_text(self) -> str:
        """All message texts joined, in order."""
        return "\n".join(m.text() for m in self.messages)


def parse_chat_request(body: bytes) -> ChatRequest:
    """Validate a request body, raising :class:`InvalidRequest` that names the bad field.

    Validation is strict (``"temperature": "0.5"`` is an error, as it is for OpenAI): a value
    the gateway coerced would still reach the upstream in its original, wrong type.
    """
    req, raw = parse_json_object(body, ChatRequest)
    req._raw = raw
    return req
