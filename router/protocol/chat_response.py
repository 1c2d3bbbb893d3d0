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
        return Usage(p, c)


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
