"""A test double of the Backend seam: answers from a script, records what it was asked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from router.backends.base import Target
from router.errors import UpstreamError
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion, Usage


def completion_body(model: str, text: str, usage: Usage) -> dict[str, object]:
    """A minimal OpenAI ``chat.completion`` body."""
    return {
        "id": "chatcmpl-scripted",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }


def _chunk(model: str, delta: dict[str, object], finish: str | None = None) -> Chunk:
    return Chunk(
        data={
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


@dataclass
class ScriptedBackend:
    """Fails with the errors queued for a model (in order), then answers ``reply``.

    ``cut_after`` makes streams raise ``cut_error`` after that many content chunks.
    """

    reply: str = "scripted reply"
    usage: Usage = field(default_factory=lambda: Usage(10, 3))
    errors: dict[str, list[UpstreamError]] = field(default_factory=dict)
    cut_after: int | None = None
    cut_error: UpstreamError | None = None
    calls: list[tuple[str, ChatRequest]] = field(default_factory=list)

    def _maybe_fail(self, target: Target) -> None:
        queue = self.errors.get(target.name)
        if queue:
            raise queue.pop(0)

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Answer or fail as scripted."""
        self.calls.append((target.name, req))
        self._maybe_fail(target)
        return Completion(
            completion_body(target.name, self.reply, self.usage), self.usage, target.name
        )

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Stream the reply word by word, then a usage chunk, or fail as scripted."""
        self.calls.append((target.name, req))
        self._maybe_fail(target)
        yield _chunk(target.name, {"role": "assistant", "content": ""})
        for i, word in enumerate(self.reply.split(" ")):
            if self.cut_after is not None and i >= self.cut_after:
                assert self.cut_error is not None
                raise self.cut_error
            yield _chunk(target.name, {"content": (" " if i else "") + word})
        yield _chunk(target.name, {}, "stop")
        u = self.usage
        yield Chunk(
            data={
                "id": "chatcmpl-scripted",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": target.name,
                "choices": [],
                "usage": {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                },
            },
            usage=u,
        )

    async def aclose(self) -> None:
        """Nothing to release."""
