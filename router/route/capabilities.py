"""Capability gates: which models can serve a request at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TEMPLATE_SLACK_TOKENS = 64
"""Room for what a chat template adds besides the messages (a default system prompt)."""


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a request needs from the model that answers it."""

    tools: bool
    json_schema: bool
    vision: bool
    context_tokens: int
    """Estimated prompt tokens plus the requested output limit."""
    exact_tokens: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Prompt tokens plus the output limit counted with a model's own tokenizer, by model name
    (only models near their context window whose tokenizer is known); the estimate otherwise."""

    def tokens_for(self, model: ModelSpec) -> int:
        """The context ``model`` needs for this request: its exact count, else the estimate."""
        return self.exact_tokens.get(model.name, self.context_tokens)

    def unmet(self, model: ModelSpec) -> tuple[str, str] | None:
        """The first requirement ``model`` fails, as (request field, problem); None if it fits."""
        caps = model.capabilities
        if self.tools and not caps.tools:
            return "tools", "tool calls"
        if self.json_schema and not caps.json_schema:
            return "response_format", "structured outputs (json_schema)"
        if self.vision and not caps.vision:
            return "messages", "image inputs"
        if self.tokens_for(model) > caps.context_window:
            return self.context_unmet(model)
        return None

    def context_unmet(self, model: ModelSpec | None = None) -> tuple[str, str]:
        """What :meth:`unmet` says when the context window is what ``model`` misses."""
        if model is not None and model.name in self.exact_tokens:
            return "messages", f"a context of {self.exact_tokens[model.name]} tokens"
        return "messages", f"a context of about {self.context_tokens} tokens"

    def is_context(self, unmet: tuple[str, str]) -> bool:
        """Whether ``unmet`` (from :meth:`unmet`) is the context window."""
        return unmet[0] == "messages" and unmet[1].startswith("a context of")


def estimate_prompt_tokens(req: ChatRequest) -> int:
    """A tokenizer-free estimate of the prompt's tokens (about 4 characters a token)."""
    chars = sum(len(m.text()) for m in req.messages)
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(req.messages)


def upper_bound_prompt_tokens(req: ChatRequest) -> int:
    """A bound no byte-level tokenizer exceeds: a token covers at least one UTF-8 byte (each
    character at most four), plus the per-message overhead and a template's additions. A
    request whose bound fits a model's window fits it whatever its tokenizer, so only the
    others are counted exactly."""
    chars = sum(len(m.text()) for m in req.messages)
    return 4 * chars + 2 * TOKENS_PER_MESSAGE * len(req.messages) + TEMPLATE_SLACK_TOKENS


def near_limit_models(policy: Policy, req: ChatRequest) -> list[ModelSpec]:
    """The models ``req`` may be planned on (the named model, or the route's tier models, and
    their fallbacks) whose context window the request might not fit: worth an exact count."""
    bound = upper_bound_prompt_tokens(req) + (req.output_limit or 0)
    # one pass over plain fields first: the usual request fits every window, and the policy's
    # lookups by name cost more than this (they go through pydantic's private attributes)
    small = [m for m in policy.models if m.capabilities.context_window < bound]
    if not small:
        return []
    route = policy.route(req.model)
    names = {t.model for t in route.tiers} if route is not None else {req.model}
    for name in tuple(names):
        model = policy.model(name)
        names.update(model.fallbacks if model is not None else ())
    return [m for m in small if m.name in names and m.kind == "chat"]


def requirements_of(
    req: ChatRequest, exact_prompt_tokens: Mapping[str, int] = MappingProxyType({})
) -> Requirements:
    """Read what ``req`` needs; ``exact_prompt_tokens`` are prompt counts by model name."""
    wants_tools = bool(req.tools) and req.tool_choice != "none"
    output = req.output_limit or 0
    return Requirements(
        tools=wants_tools,
        json_schema=req.wants_json_schema(),
        vision=req.has_images(),
        context_tokens=estimate_prompt_tokens(req) + output,
        exact_tokens=MappingProxyType({k: n + output for k, n in exact_prompt_tokens.items()}),
    )
