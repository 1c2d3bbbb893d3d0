"""The ``router_budget_remaining_usd`` gauge, refreshed after requests settle.

The pipeline's ``record`` (via :func:`router.observability.hub.on_record`) marks the budget
scopes a settled request counted against; one background read per ``REFRESH_DELAY_S`` fetches
the spend of every marked scope from Redis and sets limit minus spend. The request path only
adds to a dict; a burst of requests costs one Redis read per scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import structlog

from router.budget.reserve import Budgets, BudgetScope
from router.observability.metrics import Metrics
from router.tasks import cancel_and_wait

log = structlog.get_logger("router.budget")
REFRESH_DELAY_S = 0.25
"""Delay between a settle and the gauge read (the settle is written in the background)."""


class BudgetGauge:
    """Marks scopes on settle and refreshes their gauges in the background."""

    def __init__(self, metrics: Metrics, budgets: Budgets) -> None:
        """Refresh ``metrics``' budget gauges from ``budgets``."""
        self.metrics = metrics
        self.budgets = budgets
        self._dirty: dict[tuple[str, str], BudgetScope] = {}
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0

    def mark(self, scopes: Iterable[BudgetScope]) -> None:
        """Schedule a refresh of ``scopes``."""
        for s in scopes:
            self._dirty[(s.scope, s.window)] = s
        if self._dirty and self._task is None and self.budgets.redis is not None:
            self._task = asyncio.get_running_loop().create_task(self._later())

    async def _later(self) -> None:
        await asyncio.sleep(REFRESH_DELAY_S)
        self._task = None
        await self.refresh()

    async def refresh(self) -> None:
        """Read the spend of every marked scope and set its gauges (never raises)."""
        dirty, self._dirty = self._dirty, {}
        for scope in dirty.values():
            try:
                spent, _reserved = await self.budgets.spent_usd(scope)
            except Exception as exc:
                log.debug("budget_gauge_failed", scope=scope.scope, error=repr(exc))
                continue
            self.metrics.budget_limit.get(scope.label, scope.window).set(scope.limit_usd)
            remaining = max(0.0, scope.limit_usd - spent)
            self.metrics.budget_remaining.get(scope.label, scope.window).set(remaining)
            self.refreshes += 1

    async def aclose(self) -> None:
        """Stop a pending refresh."""
        task, self._task = self._task, None
        await cancel_and_wait([task])
