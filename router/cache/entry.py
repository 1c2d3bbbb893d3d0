"""A cached completion and its serialised form (JSON text, shared by both caches)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from router.protocol.chat_response import Completion, Usage

FORMAT = 1


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What the cache keeps of one response."""

    body: dict[str, Any]
    """The OpenAI ``chat.completion`` body as the upstream returned it."""
    model: str
    """The policy name of the model that answered."""
    usage: Usage | None
    created_s: float
    """When it was stored (Unix seconds)."""
    prompt: str = ""
    """The last user message (semantic entries only; the false-hit guards compare it)."""

    def completion(self) -> Completion:
        """The entry as a :class:`Completion` (the body is shared, not copied)."""
        return Completion(body=self.body, usage=self.usage, model=self.model)

    def dumps(self) -> str:
        """Serialise to JSON text."""
        usage = None
        if self.usage is not None:
            usage = [self.usage.prompt_tokens, self.usage.completion_tokens, self.usage.estimated]
        doc = {
            "f": FORMAT,
            "b": self.body,
            "m": self.model,
            "u": usage,
            "t": self.created_s,
            "p": self.prompt,
        }
        return orjson.dumps(doc).decode()

    @staticmethod
    def loads(data: str | bytes) -> CacheEntry:
        """Parse :meth:`dumps` output; raises ``ValueError`` on anything else."""
        doc = orjson.loads(data)
        if not isinstance(doc, dict) or doc.get("f") != FORMAT or not isinstance(doc["b"], dict):
            raise ValueError("not a cache entry of this format")
        u = doc.get("u")
        usage = Usage(int(u[0]), int(u[1]), bool(u[2])) if u else None
        return CacheEntry(
            body=doc["b"],
            model=str(doc["m"]),
            usage=usage,
            created_s=float(doc["t"]),
            prompt=str(doc.get("p") or ""),
        )


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A response served from the cache."""

    kind: Literal["exact", "semantic"]
    entry: CacheEntry
    age_s: float
    """Seconds since the entry was stored."""
    similarity: float | None = None
    """Cosine similarity of the prompts (semantic hits)."""

    @property
    def header(self) -> str:
        """The ``x-router-cache`` value: ``hit-exact`` or ``hit-semantic``."""
        return f"hit-{self.kind}"

    def completion(self) -> Completion:
        """The cached completion."""
        return self.entry.completion()
