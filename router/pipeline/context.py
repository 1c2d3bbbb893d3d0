"""One request while the pipeline runs it, and the handle the API renders.

:class:`Run` is the pipeline's own scratch state for one request: the stages return values and
``run.py`` / ``stream.py`` write them here; nothing outside the pipeline sees a ``Run``. When the
request is over, :meth:`Run.finish` turns it into the immutable :class:`Outcome` that is
recorded (once: a second ``finish`` is refused).

:class:`ChatOutcome` is what :func:`router.pipeline.run.run_chat` returns to the API: a whole
completion or an SSE stream, the ``x-router-*`` headers, and the shadow job to start after the
response was sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from router.backends.calls import Attempts
from router.budget.reserve import Reservation
from router.classify.base import Classification
from router.context import RequestContext
from router.errors import RouterError
from router.learning.shadow import ShadowJob
from router.outcome import CacheResult, Outcome
from router.policy.schema import ModelSpec
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage
from router.route.decision import RouteDecision
from router.stage_times import StageTimes


@dataclass(slots=True)
class Run:
    """The values one request has gathered so far (the pipeline's private state)."""

    ctx: RequestContext
    policy_hash: str
    req: ChatRequest
    decision: RouteDecision
    classification: Classification | None
    attempts: Attempts = field(default_factory=Attempts)
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers the stages added (cache, admission, guard)."""
    usage: Usage | None = None
    cost_usd: float | None = None
    status: int = 200
    error_code: str | None = None
    hold: Reservation | None = None
    cache: CacheResult = "miss"
    completion: Completion | None = None
    planned: float = 0.0
    routed: float = 0.0
    admitted: float = 0.0
    upstream_s: float = 0.0
    outcome: Outcome | None = None
    """Set by :meth:`finish`, once."""

    @property
    def answered(self) -> ModelSpec:
        """The model that answered, or the decision's target before one did."""
        return self.attempts.model or self.decision.target

    def finish(self, error: RouterError | None) -> Outcome:
        """The immutable outcome of this request; raises if it was already finished."""
        if self.outcome is not None:
            raise RuntimeError(f"request {self.ctx.request_id} was finished twice")
        status, code = (error.status, error.code) if error is not None else (200, None)
        self.outcome = Outcome(
            ctx=self.ctx,
            policy_hash=self.policy_hash,
            decision=self.decision,
            classification=self.classification,
            failures=tuple(self.attempts.failures),
            answered=self.attempts.model,
            stream=self.req.stream,
            usage=self.usage,
            cost_usd=self.cost_usd,
            status=status if error is not None else self.status,
            error_code=code if error is not None else self.error_code,
            error=error,
            hold=self.hold,
            times=StageTimes(self.planned, self.routed, self.admitted, self.upstream_s),
            cache=self.cache,
            completion=self.completion,
        )
        return self.outcome


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    """What the pipeline hands the API for one request: render it, then start ``shadow``."""

    headers: dict[str, str]
    """The ``x-router-*`` response headers (and ``x-request-id``)."""
    completion: Completion | None
    """The whole completion (JSON requests)."""
    stream: AsyncIterator[bytes] | None
    """Chat SSE events, ``data: [DONE]`` included (streamed requests)."""
    shadow: ShadowJob | None
    """Set when the request was sampled for a shadow label (run after the response)."""
    run: Run
    """The request's state; its :attr:`Run.outcome` is set once the request is recorded."""

    @property
    def model_name(self) -> str:
        """The policy name of the model that answered (for a cache hit: the one that did)."""
        return self.run.answered.name

    def finished(self) -> Outcome | None:
        """The recorded outcome; None while a stream is still being relayed."""
        return self.run.outcome


def response_headers(outcome: ChatOutcome) -> dict[str, str]:
    """The ``x-router-*`` headers of a response."""
    return outcome.headers
