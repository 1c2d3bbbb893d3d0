"""A Backend wrapper that applies a request's guard to every call the pipeline makes.

Retries and fallbacks call the backend once per target, so the guard decides per target: a
local model gets the request as the client sent it; a hosted one gets the redacted copy (when
the policy says ``redact`` and PII was found) and its answer is masked and restored. A request
pinned to local models can never reach a hosted one: the wrapper refuses the call with a 400.
The wrapper changes nothing outside itself: the headers the client gets come from
:meth:`~router.guard.stage.GuardVerdict.response_headers`, given the models that were called.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from router.backends.base import Backend, Target
from router.errors import InvalidRequest
from router.guard.output import masked_kinds
from router.guard.redact import Redacted, redact_request
from router.guard.rewrite import AnswerRules, StreamRewriter
from router.guard.stage import GuardVerdict, is_local
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion

BackendFor = Callable[[ModelSpec], Backend]


class _Prepared:
    """The request each target may see, for one request (the redacted copy made once)."""

    def __init__(self, verdict: GuardVerdict) -> None:
        self.verdict = verdict
        self._redacted: Redacted | None = None
        self._request: ChatRequest | None = None

    def __call__(self, req: ChatRequest, target: Target) -> tuple[ChatRequest, AnswerRules | None]:
        """The request ``target`` may see, and how to rewrite its answer (None: as is)."""
        verdict = self.verdict
        settings = verdict.settings
        if is_local(target.model, settings):
            return req, None
        if verdict.pinned_local:  # defence in depth: keep_local already removed hosted targets
            raise InvalidRequest(
                f"Refusing to send a request pinned to local models to hosted '{target.name}'.",
                param="model",
                code="privacy_pinned_local",
            )
        sent, table = req, None
        if verdict.redacts:
            if self._redacted is None or self._request is not req:
                kinds = [k for k, a in verdict.eff.pii.items() if a != "off"]
                self._redacted = redact_request(req, kinds, settings.scan_roles)
                self._request = req
            sent = self._redacted.request
            table = self._redacted.placeholders if settings.restore else None
        rules = AnswerRules(
            masked_kinds(verdict.eff.output, settings.detect),
            table,
            settings.restore_tool_arguments,
        )
        return sent, rules if rules.active else None


class GuardedBackend:
    """Wraps one backend for one request."""

    def __init__(self, inner: Backend, prepare: _Prepared) -> None:
        self._inner = inner
        self._prepare = prepare

    async def complete(self, req: ChatRequest, target: Target) -> Completion:
        """Call ``target`` with the request it may see; rewrite a hosted answer."""
        sent, rules = self._prepare(req, target)
        completion = await self._inner.complete(sent, target)
        if rules is not None:
            completion.body = rules.completion(completion.body)
        return completion

    async def stream(self, req: ChatRequest, target: Target) -> AsyncIterator[Chunk]:
        """Stream from ``target`` with the request it may see; rewrite a hosted answer."""
        sent, rules = self._prepare(req, target)
        it = self._inner.stream(sent, target)
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


def guarded(inner: BackendFor, verdict: GuardVerdict) -> BackendFor:
    """``inner`` with every backend it returns wrapped by ``verdict``."""
    prepare = _Prepared(verdict)

    def backend_for(model: ModelSpec) -> Backend:
        return GuardedBackend(inner(model), prepare)

    return backend_for
