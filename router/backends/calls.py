"""Calling a decision's target with retries (tenacity), then its fallbacks, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from router.backends.base import Backend, Target
from router.errors import RETRY_CLASSES, UpstreamAuthError, UpstreamError
from router.policy.schema import ModelSpec, Policy, RetryPolicy
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Chunk, Completion
from router.route.decision import RouteDecision

log = structlog.get_logger(__name__)

BackendFor = Callable[[ModelSpec], Backend]
T = TypeVar("T")


@dataclass(slots=True)
class Attempts:
    """What was tried for one request, for headers, logs and the ledger."""

    failures: list[tuple[str, str]] = field(default_factory=list)
    """(model name, error code) of each failed attempt, in order."""
    model: ModelSpec | None = None
    """The model that answered."""

    @property
    def fell_back(self) -> bool:
        """Whether a model other than the first one answered."""
        return fell_back(self.failures, self.model)


def fell_back(failures: Sequence[tuple[str, str]], answered: ModelSpec | None) -> bool:
    """Whether ``answered`` is not the model whose attempts failed (a fallback answered)."""
    return (
        bool(failures)
        and answered is not None
        and any(name != answered.name for name, _ in failures)
    )


def _retryable(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    classes = tuple(RETRY_CLASSES[name] for name in policy.on)
    return lambda exc: isinstance(exc, classes)


def _falls_back(exc: UpstreamError) -> bool:
    """Errors worth another model: transient ones, and a model whose credentials fail."""
    return exc.retryable or isinstance(exc, UpstreamAuthError)


def _retrying(policy: RetryPolicy) -> AsyncRetrying:
    """Tenacity for all of a target's attempts: ``policy.attempts`` in all, with exponential
    backoff and jitter between them (the only backoff formula of the request path)."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential_jitter(
            multiplier=policy.backoff_s, max=policy.max_backoff_s, jitter=policy.backoff_s
        ),
        retry=retry_if_exception(_retryable(policy)),
        reraise=True,
    )


def _candidates(decision: RouteDecision) -> tuple[ModelSpec, ...]:
    return (decision.target, *decision.fallbacks)


async def _with_retries(
    call: Callable[[], Awaitable[T]], policy: RetryPolicy, model: str, attempts: Attempts
) -> T:
    """Run ``call``; on a retryable failure, back off and retry per ``policy`` (tenacity).

    The first attempt runs outside tenacity: on the success path, which is nearly every
    request, its per-attempt bookkeeping would be pure overhead. After a retryable failure,
    tenacity takes over from that failure as its own first attempt, so the waits and the
    attempt count are tenacity's alone.
    """
    try:
        return await call()
    except UpstreamError as exc:
        attempts.failures.append((model, exc.code or "error"))
        if policy.attempts <= 1 or not _retryable(policy)(exc):
            raise
        failed: UpstreamError | None = exc
    async for attempt in _retrying(policy):
        with attempt:
            if failed is not None:  # attempt 1 already ran: hand tenacity its failure
                error, failed = failed, None
                raise error
            try:
                return await call()
            except UpstreamError as exc:
                attempts.failures.append((model, exc.code or "error"))
                raise
    raise AssertionError("unreachable: tenacity reraises the last error")


async def complete_with_fallbacks(
    req: ChatRequest,
    decision: RouteDecision,
    policy: Policy,
    backend_for: BackendFor,
    attempts: Attempts,
) -> Completion:
    """Return the first successful completion among the target and its fallbacks."""
    last: UpstreamError | None = None
    for model in _candidates(decision):
        backend = backend_for(model)
        target = Target.of(policy, model)

        async def call(backend: Backend = backend, target: Target = target) -> Completion:
            return await backend.complete(req, target)

        try:
            result = await _with_retries(call, policy.retry_for(model), model.name, attempts)
        except UpstreamError as exc:
            last = exc
            if not _falls_back(exc):
                raise
            log.warning("upstream_failed", model=model.name, code=exc.code, error=exc.message)
            continue
        attempts.model = model
        return result
    assert last is not None
    raise last


async def open_stream_with_fallbacks(
    req: ChatRequest,
    decision: RouteDecision,
    policy: Policy,
    backend_for: BackendFor,
    attempts: Attempts,
) -> tuple[Chunk, AsyncIterator[Chunk]]:
    """Open a stream on the first target that yields a first chunk.

    Retries and fallbacks are possible only until the first chunk: after that the client has
    seen output, and a failure becomes an error event on the stream.
    """
    last: UpstreamError | None = None
    for model in _candidates(decision):
        backend = backend_for(model)
        target = Target.of(policy, model)

        async def call(
            backend: Backend = backend, target: Target = target
        ) -> tuple[Chunk, AsyncIterator[Chunk]]:
            it = backend.stream(req, target).__aiter__()
            try:
                return await it.__anext__(), it
            except StopAsyncIteration:
                raise RETRY_CLASSES["interrupted"](
                    f"Upstream '{target.name}' sent an empty stream.", model=target.name
                ) from None

        try:
            first, it = await _with_retries(call, policy.retry_for(model), model.name, attempts)
        except UpstreamError as exc:
            last = exc
            if not _falls_back(exc):
                raise
            log.warning("upstream_failed", model=model.name, code=exc.code, error=exc.message)
            continue
        attempts.model = model
        return first, it
    assert last is not None
    raise last
