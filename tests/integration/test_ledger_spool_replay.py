"""Spooled entries replayed more than once reach Redis once (issue #20, "idempotent replay").

A replay that crashed after Redis took some lines, or a settle whose reply timed out although
it ran, sends the same entry again. On a real Redis: one ledger row per write id, and the spend
reaches the budget counters exactly once, for a settled hold and for a ``fail_open`` charge.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis.asyncio as aredis

from router.budget.reserve import Budgets, BudgetScope
from router.ledger.record import LedgerRecord
from router.ledger.replay import Upkeep
from router.ledger.spool import Spool
from router.ledger.writer import Ledger
from router.policy.sections.budgets import BudgetSettings

pytestmark = pytest.mark.integration

KEY = BudgetScope("k:key_r", "key key_r", 1.0, "day")
COST_USD = 0.000315


def _record(request_id: str, ts_s: float) -> LedgerRecord:
    return LedgerRecord(
        ts=ts_s, request_id=request_id, tenant="t", key_id="key_r", team="search",
        route="auto", tier="hosted", reason="x", score=0.7, model="mock-hosted",
        prompt_tokens=6, completion_tokens=30, estimated=False, cost_usd=COST_USD,
        counterfactual_usd=COST_USD, cache="miss", latency_ms=1.0, policy_hash="h",
        status=200, error=None, stream=False, fallback=False,
    )  # fmt: skip


async def test_a_settle_entry_replayed_three_times_counts_once(
    redis_client: aredis.Redis,
) -> None:
    budgets = Budgets(redis_client)
    ledger = Ledger(redis_client, budgets)
    now_s, _us = await redis_client.time()
    hold = await budgets.reserve(BudgetSettings(), (KEY,), (), 0.01, 40)
    assert hold is not None
    entry = ledger.entry(_record("r-settle", float(now_s)), hold)
    appended = [await ledger.run_entries([entry]) for _ in range(3)]
    assert appended == [[1], [0], [0]]  # the ledger script refused the second and third row
    assert ledger.duplicates == 2
    assert [r.request_id async for r in ledger.read()] == ["r-settle"]
    assert await budgets.spent_usd(KEY) == pytest.approx((COST_USD, 0.0))


async def test_a_fail_open_charge_in_a_spool_replayed_twice_counts_once(
    redis_client: aredis.Redis, tmp_path: Path
) -> None:
    # Served while Redis was unreachable: a local hold, its entry spooled to disk.
    down = Budgets(None)
    settings = BudgetSettings(on_store_error="fail_open", local_allowance_usd=0.05)
    hold = await down.reserve(settings, (KEY,), (), 0.01, 40)
    assert hold is not None and hold.local
    now_s, _us = await redis_client.time()
    entry = Ledger(None, down).entry(_record("r-open", float(now_s)), hold)
    assert [name for name, _, _ in entry.commands] == ["charge", "ledger"]
    spool = Spool(tmp_path / "spool")
    await spool.append([entry])
    spool.close()
    # A copy as a second, older file: what a replay that crashed before deleting it leaves.
    (only,) = (tmp_path / "spool").glob("spool-*.jsonl")
    shutil.copy(only, tmp_path / "spool" / "spool-1-1.jsonl")

    budgets = Budgets(redis_client)
    ledger = Ledger(redis_client, budgets)
    upkeep = Upkeep(ledger, Spool(tmp_path / "spool"))
    assert await upkeep.replay() is True  # both files replayed, and gone
    assert not list((tmp_path / "spool").iterdir())
    rows = [r async for r in ledger.read()]
    assert [(r.request_id, r.unmetered) for r in rows] == [("r-open", True)]
    assert ledger.duplicates == 1
    assert await budgets.spent_usd(KEY) == pytest.approx((COST_USD, 0.0))
    roll = await ledger.rollups(rows[0].day)
    assert roll["search"]["mock-hosted"]["unmetered_nusd"] == 315_000
