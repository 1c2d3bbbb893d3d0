"""A Backend wrapper that applies a request's guard to every call the pipeline makes.

Retries and fallbacks call the backend once per target, so the guard decides per target: a
local model gets the request as the client sent it; a hosted one gets the redacted copy (when
the policy says ``redact`` and PII was found) and its answer is masked and restored. A request
pinned to local models can never reach a hosted one: the wrapper refuses the call with a 400.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from router.backends.base import Backend
from router.guard.rewrite import AnswerRules, StreamRewriter
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion

if TYPE_CHECKING:
    from router.guard.stage import RequestGuard

BackendFor = Callable[[ModelSpec], Backend]


class GuardedBackend:
    """Wraps one backend for one request."""

    def __init__(self, inner: Backend, guard: RequestGuard, headers: dict[str, str]) -> None:
        self._inner = inner
        self._guard = guard
        self._headers = headers

    async def complete(self, req: ChatRequest, target: ModelSpec, policy: Policy) -> Completion:
        """Call ``target`` with the request it may see; rewrite a hosted answer."""
        sent, rules = self._guard.prepare(req, target, self._headers)
        completion = await self._inner.complete(sent, target, policy)
        if rules is not None:
            completion.body = rules.completion(completion.body)
        return completion

    async def stream(
        self, req: ChatRequest, target: ModelSpec, policy: Policy
    ) -> AsyncIterator[Chunk]:
        """Stream from ``target`` with the request it may see; rewrite a hosted answer."""
        sent, rules = self._guard.prepare(req, target, self._headers)
        it = self._inner.stream(sent, target, policy)
        try:
            if rules is None:
                async for chunk in it:
                    yield chunk
                return
            async for chunk in _rewritten(it, rules):
                yield chunk
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    async def aclose(self) -> None:
        """Nothing of its own to close (the inner backend is shared)."""


async def _rewritten(it: AsyncIterator[Chunk], rules: AnswerRules) -> AsyncIterator[Chunk]:
    rewriter = StreamRewriter(rules)
    async for chunk in it:
        if chunk.usage is not None and not chunk.data.get("choices"):
            tail = rewriter.tail()  # the usage chunk comes last: release held text first
            if tail is not None:
                yield tail
        yield rewriter.chunk(chunk)
    tail = rewriter.tail()
    if tail is not None:
        yield tail


def guarded(inner: BackendFor, guard: RequestGuard, headers: dict[str, str]) -> BackendFor:
    """``inner`` with every backend it returns wrapped by ``guard``."""

    def backend_for(model: ModelSpec) -> Backend:
        return GuardedBackend(inner(model), guard, headers)

    return backend_for
