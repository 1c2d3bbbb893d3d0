"""The policy's ``budgets:`` section: global and team budgets, the action, alerts, failure mode.

Example::

    budgets:
      global: {limit_usd: 500, window: month}
      teams:
        search: {limit_usd: 50, window: day, rpm: 600, tpm: 200000}
      action: reject            # or downgrade: send the request to the route's local tier
      soft_limit_percent: 80    # alert (log line, metric, optional webhook) when crossed
      webhook_url: https://hooks.example.com/budget
      on_store_error: fail_closed   # or fail_open: serve up to local_allowance_usd per process
      local_allowance_usd: 1.0
      reservation_ttl_s: 120

Key budgets and key rate limits live on the virtual key itself (``router keys create``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Window = Literal["day", "week", "month", "total"]
"""A budget window: calendar day, ISO week or calendar month in UTC, or no reset at all."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScopeBudget(_Strict):
    """A spend limit over a window (US dollars)."""

    limit_usd: Annotated[float, Field(ge=0)]
    window: Window = "month"


class TeamBudget(_Strict):
    """A team's budget and rate limits; every field is optional."""

    limit_usd: Annotated[float, Field(ge=0)] | None = None
    window: Window = "month"
    rpm: Annotated[int, Field(gt=0)] | None = None
    """Requests per minute for the whole team."""
    tpm: Annotated[int, Field(gt=0)] | None = None
    """Tokens (prompt + completion) per minute for the whole team."""


class BudgetSettings(_Strict):
    """How spend is limited. Without a section nothing but key budgets applies."""

    global_: Annotated[ScopeBudget | None, Field(alias="global")] = None
    teams: dict[str, TeamBudget] = Field(default_factory=dict)
    action: Literal["reject", "downgrade"] = "reject"
    """What an exhausted budget does: a 429 (``reject``) or the route's local tier."""
    soft_limit_percent: Annotated[float, Field(gt=0, le=100)] | None = None
    """Alert once per scope and window when reserved plus spent crosses this share."""
    webhook_url: str | None = None
    """POSTed a JSON alert when a soft limit is crossed (best effort, 2 s timeout)."""
    on_store_error: Literal["fail_closed", "fail_open"] = "fail_closed"
    """Redis unreachable: answer 503 (``fail_closed``) or serve within the local allowance."""
    local_allowance_usd: Annotated[float, Field(ge=0)] = 1.0
    """Worst-case spend one process may serve while Redis is unreachable (``fail_open``)."""
    reservation_ttl_s: Annotated[float, Field(gt=0)] = 300.0
    """A reservation not settled after this many seconds (a dead worker) is reclaimed."""
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
