"""OpenAI wire models of a chat completion: token usage, a whole completion, a streamed chunk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion. ``estimated`` is True when a tokenizer, not the
    upstream, produced them."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    cache_read_tokens: int = 0
    """Prompt tokens read from the provider's prompt cache (part of ``prompt_tokens``)."""
    cache_write_tokens: int = 0
    """Prompt tokens written to the provider's prompt cache (part of ``prompt_tokens``)."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @staticmethod
    def from_openai(data: Any) -> Usage | None:
        """Read an OpenAI ``usage`` object; None when absent or malformed."""
        if not isinstance(data, dict):
            return None
        p, c = data.get("prompt_tokens"), data.get("completion_tokens")
        if not isinstance(p, int) or not isinstance(c, int):
            return None
        # OpenAI: prompt_tokens_details.cached_tokens; litellm adds Anthropic's cache reads
        # there and its cache writes as cache_creation_input_tokens (both within prompt_tokens).
        details = data.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        read = _count(data.get("cache_read_input_tokens")) or _count(details.get("cached_tokens"))
        write = _count(data.get("cache_creation_input_tokens")) or _count(
            details.get("cache_creation_tokens")
        )
        read = min(read, p)
        return Usage(p, c, cache_read_tokens=read, cache_write_tokens=min(write, p - read))


def _count(value: Any) -> int:
    """A token count, or 0 for anything that is not a non-negative integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(slots=True)
class Completion:
    """A whole (non-streamed) completion in OpenAI's response shape."""

    body: dict[str, Any]
    usage: Usage | None
    model: str
    """The policy name of the model that answered."""


@dataclass(slots=True)
class Chunk:
    """One streamed chunk in OpenAI's ``chat.completion.chunk`` shape.

    ``usage`` is set on the upstream's usage chunk (the one with empty ``choices``).
    """

    data: dict[str, Any]
    usage: Usage | None = None
    raw: bytes | None = field(default=None, repr=False)
    """The chunk's JSON exactly as the upstream sent it, when it can be forwarded unchanged."""
