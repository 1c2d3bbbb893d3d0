"""Capability gates: which models can serve a request at all."""

from __future__ import annotations

from dataclasses import dataclass

from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a request needs from the model that answers it."""

    tools: bool
    json_schema: bool
    vision: bool
    context_tokens: int
    """Estimated prompt tokens plus the requested output limit."""

    def unmet(self, model: ModelSpec) -> tuple[str, str] | None:
        """The first requirement ``model`` fails, as (request field, problem); None if it fits."""
        caps = model.capabilities
        if self.tools and not caps.tools:
            return "tools", "tool calls"
        if self.json_schema and not caps.json_schema:
            return "response_format", "structured outputs (json_schema)"
        if self.vision and not caps.vision:
            return "messages", "image inputs"
        if self.context_tokens > caps.context_window:
            return self.context_unmet()
        return None

    def context_unmet(self) -> tuple[str, str]:
        """What :meth:`unmet` says when the context window is the only requirement missed."""
        return "messages", f"a context of about {self.context_tokens} tokens"


def estimate_prompt_tokens(req: ChatRequest) -> int:
    """A tokenizer-free estimate of the prompt's tokens (about 4 characters a token)."""
    chars = sum(len(m.text()) for m in req.messages)
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(req.messages)


def requirements_of(req: ChatRequest) -> Requirements:
    """Read what ``req`` needs."""
    wants_tools = bool(req.tools) and req.tool_choice != "none"
    return Requirements(
        tools=wants_tools,
        json_schema=req.wants_json_schema(),
        vision=req.has_images(),
        context_tokens=estimate_prompt_tokens(req) + (req.output_limit or 0),
    )
