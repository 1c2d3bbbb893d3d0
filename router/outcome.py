"""The finished request: one immutable value, recorded once.

:class:`Outcome` is what the ledger row, the metrics, the trace spans, the access log and the
shadow label are made of. The pipeline builds it when the request is over (the whole answer
sent, the stream ended or cut, or the request refused after routing) and never changes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from router.backends.calls import fell_back
from router.budget.reserve import Reservation
from router.classify.base import Classification
from router.context import RequestContext
from router.errors import RouterError
from router.policy.schema import ModelSpec
from router.protocol.chat_response import Completion, Usage
from router.route.decision import RouteDecision
from router.stage_times import StageTimes

CacheResult = Literal["miss", "exact", "semantic"]
"""How the cache served a request (the ledger's ``cache`` column, the metrics' label)."""

CLIENT_CLOSED = 499
"""Status recorded for a request whose client disconnected (nginx's convention)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request ended as."""

    ctx: RequestContext
    policy_hash: str
    decision: RouteDecision
    """The decision that was called (after admission's downgrade, if any)."""
    classification: Classification | None
    failures: tuple[tuple[str, str], ...]
    """(model name, error code) of each failed upstream attempt, in order."""
    answered: ModelSpec | None
    """The model that answered; None when none did (or the cache did)."""
    stream: bool
    usage: Usage | None
    cost_usd: float | None
    status: int
    error_code: str | None
    error: RouterError | None
    """The error the request failed with (None for a success, a disconnect or no usage)."""
    hold: Reservation | None
    """The budget reservation that recording settles."""
    times: StageTimes
    cache: CacheResult
    completion: Completion | None
    """The whole completion (JSON responses; None for streams)."""

    @property
    def model_name(self) -> str:
        """The policy name of the model that answered (or was last tried)."""
        return (self.answered or self.decision.target).name

    @property
    def fell_back(self) -> bool:
        """Whether a model other than the first one answered."""
        return fell_back(self.failures, self.answered)

    @property
    def cache_hit(self) -> bool:
        """Whether the cache answered (no upstream tokens were used)."""
        return self.cache != "miss"
