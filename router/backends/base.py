"""The Backend seam: what every model client returns, and the protocol it implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from router.api.protocol import ChatRequest
from router.policy.schema import ModelSpec, Policy, Timeouts


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


@dataclass(frozen=True, slots=True)
class Target:
    """One model to call, with the policy's timeouts for it resolved (the model's own, else
    the policy's defaults), so that a backend needs nothing but the request and its target."""

    model: ModelSpec
    timeouts: Timeouts

    @property
    def name(self) -> str:
        """The policy name of the model."""
        return self.model.name

    @classmethod
    def of(cls, policy: Policy, model: ModelSpec) -> Target:
        """``model`` with the timeouts ``policy`` sets for it."""
        return cls(model, policy.timeouts_for(model))


class Backend(Protocol):
    """A client for one kind of upstream (``openai_compat``, ``litellm``, ``local``).

    Implementations raise only :class:`router.errors.UpstreamError` subclasses, translated in
    one place per backend, and never retry on their own: retries and fallbacks belong to
    :mod:`router.backends.calls`.
    """

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Call ``target`` and return the whole completion."""
        ...

    def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Call ``target`` and yield its chunks as they arrive, the usage chunk included."""
        ...

    async def aclose(self) -> None:
        """Release connections and workers."""
        ...
