"""Where reports read from: the ledger stream (exact percentiles) and the team budget counters.

Both readers reuse the owners' code: :meth:`router.ledger.writer.Ledger.read` for records and
:meth:`router.budget.reserve.Budgets.spent_usd` for budget use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from router.budget.reserve import Budgets, BudgetScope
from router.learning.quality import routing_quality
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.policy.schema import Policy
from router.policy.sections.budgets import BudgetSettings
from router.redis.client import RedisClient
from router.redis.keys import scope_name, window_reset_s
from router.reports.aggregate import Report, aggregate

MAX_RECORDS = 2_000_000
"""Most records one report reads (about 1 GB of memory); the report says when it stopped."""


def policy_tiers(policy: Policy) -> dict[str, str]:
    """Model name -> tier of every model of ``policy`` that has a tier."""
    return {m.name: m.tier for m in policy.models if m.tier}


async def team_budgets(redis: RedisClient, settings: BudgetSettings) -> list[dict[str, Any]]:
    """Budget use of each team with a ``limit_usd`` (US dollars, current window).

    ``used_pct`` counts spent plus reserved (in-flight requests) against the limit.
    """
    budgets = Budgets(redis)
    out: list[dict[str, Any]] = []
    for team, tb in sorted(settings.teams.items()):
        if tb.limit_usd is None:
            continue
        scope = BudgetScope(scope_name("t", team), f"team {team}", tb.limit_usd, tb.window)
        spent, reserved = await budgets.spent_usd(scope)
        used = spent + reserved
        out.append(
            {
                "team": team,
                "window": tb.window,
                "limit_usd": tb.limit_usd,
                "spent_usd": round(spent, 9),
                "reserved_usd": round(reserved, 9),
                "remaining_usd": round(max(0.0, tb.limit_usd - used), 9),
                "used_pct": round(100 * used / tb.limit_usd, 4) if tb.limit_usd > 0 else None,
                "resets_in_s": round(window_reset_s(tb.window), 3),
            }
        )
    return out


async def build_report(
    redis: RedisClient,
    since_s: float | None,
    until_s: float | None,
    by: tuple[str, ...] = (),
    budget_settings: BudgetSettings | None = None,
    model_tiers: Mapping[str, str] | None = None,
    max_records: int = MAX_RECORDS,
) -> Report:
    """Read the ledger between ``since_s`` and ``until_s`` (Unix seconds) and aggregate it.

    ``model_tiers`` (model name -> tier, from the policy) fills in the tier of records that
    have none: requests that named a model instead of a route.
    """
    ledger = Ledger(redis, Budgets(redis))
    records: list[LedgerRecord] = []
    truncated = False
    async for rec in ledger.read(since_s, until_s):
        if len(records) >= max_records:
            truncated = True
            break
        if rec.tier is None and model_tiers and rec.model in model_tiers:
            rec = dataclasses.replace(rec, tier=model_tiers[rec.model])
        records.append(rec)
    # CPU work (sorting latencies) off the event loop: the gateway serves this too.
    report = await asyncio.to_thread(aggregate, records, by, since_s, until_s, time.time())
    report.totals["truncated"] = truncated
    if budget_settings is not None:
        report.budgets = await team_budgets(redis, budget_settings)
    try:
        report.quality = await routing_quality(redis, since_s, until_s)
    except Exception:  # a report without the quality section beats no report
        report.quality = None
    return report
