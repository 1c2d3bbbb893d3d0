"""The reserve and settle scripts against a real Redis: atomicity, expiry, limits, alerts."""

from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aredis

from router.budget.ratelimit import LimitScope
from router.budget.reserve import Budgets, BudgetScope
from router.errors import BudgetBusy, BudgetExceeded, RateLimited, ServiceUnavailable
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.policy.sections.budgets import BudgetSettings
from router.redis import keys as bk
from tests.integration.budget_support import early_in_a_minute

pytestmark = [pytest.mark.integration, pytest.mark.clock]

KEY = BudgetScope("k:key_a", "key key_a", 1.0, "day")
TEAM = BudgetScope("t:search", "team search", 5.0, "month")
GLOBAL = BudgetScope("g", "global", 100.0, "total")
SETTINGS = BudgetSettings()


async def _state(b: Budgets, scope: BudgetScope) -> tuple[float, float]:
    return await b.spent_usd(scope)


async def test_reserve_settle_release(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    hold = await b.reserve(SETTINGS, (KEY, TEAM, GLOBAL), (), 0.4, 100)
    assert hold is not None
    for s in (KEY, TEAM, GLOBAL):
        assert await _state(b, s) == pytest.approx((0.0, 0.4))
    assert await b.settle(hold, 0.1, 50) is True
    assert await b.settle(hold, 0.1, 50) is False  # settles once
    for s in (KEY, TEAM, GLOBAL):
        assert await _state(b, s) == pytest.approx((0.1, 0.0))
    hold2 = await b.reserve(SETTINGS, (KEY,), (), 0.5, 10)
    assert hold2 is not None
    await b.settle(hold2, 0.0, 0)  # release
    assert await _state(b, KEY) == pytest.approx((0.1, 0.0))


async def test_exhausted_scope_is_named_and_nothing_is_held(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    hold = await b.reserve(SETTINGS, (KEY, TEAM), (), 0.9, 1)
    assert hold is not None
    await b.settle(hold, 0.9, 1)
    with pytest.raises(BudgetExceeded) as err:
        await b.reserve(SETTINGS, (TEAM, KEY), (), 0.2, 1)
    assert "key key_a" in err.value.message and "exhausted" in err.value.message
    assert err.value.code == "budget_exceeded"
    assert err.value.headers["x-should-retry"] == "false"
    # the failed attempt held nothing in the team scope it had passed
    assert await _state(b, TEAM) == pytest.approx((0.9, 0.0))


async def test_only_holds_in_the_way_is_busy_not_exhausted(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    settings = BudgetSettings(reservation_ttl_s=60)
    hold = await b.reserve(settings, (KEY,), (), 0.9, 1)
    assert hold is not None
    await asyncio.sleep(1.2)  # the hold's age sets retry-after
    with pytest.raises(BudgetBusy) as err:
        await b.reserve(settings, (KEY,), (), 0.2, 1)
    assert err.value.status == 429 and err.value.code == "budget_busy"
    assert err.value.error_type == "rate_limit_error"
    assert err.value.headers["x-should-retry"] == "true"
    assert 2 <= int(err.value.headers["retry-after"]) <= 3
    await b.settle(hold, 0.5, 1)  # once it settles, the same request fits
    assert await b.reserve(settings, (KEY,), (), 0.2, 1) is not None
    with pytest.raises(BudgetExceeded) as exhausted:  # 0.5 spent + 0.6 > 1.0: never fits
        await b.reserve(settings, (KEY,), (), 0.6, 1)
    assert not isinstance(exhausted.value, BudgetBusy)
    assert exhausted.value.headers["x-should-retry"] == "false"


async def test_concurrent_reservations_never_overshoot(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    rng = random.Random(7)
    admitted = 0

    async def one() -> None:
        nonlocal admitted
        amount = rng.uniform(0.01, 0.05)
        try:
            hold = await b.reserve(SETTINGS, (KEY, TEAM), (), amount, 1)
        except BudgetExceeded:
            return
        assert hold is not None
        admitted += 1
        await asyncio.sleep(rng.uniform(0, 0.01))
        await b.settle(hold, amount * rng.uniform(0.2, 1.0), 1)

    await asyncio.gather(*(one() for _ in range(300)))
    spent, held = await _state(b, KEY)
    assert held == 0.0
    assert spent <= KEY.limit_usd
    assert admitted > 20


async def test_expired_reservations_are_reclaimed(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    short = BudgetSettings(reservation_ttl_s=0.2)
    dead = await b.reserve(short, (KEY,), (), 0.8, 1)  # its worker "dies": never settled
    assert dead is not None
    with pytest.raises(BudgetExceeded):
        await b.reserve(short, (KEY,), (), 0.5, 1)
    await asyncio.sleep(0.3)
    # the script reclaimed the dead hold: charged at its reserved amount (the provider may have
    # billed the call), so the budget cannot be spent again
    with pytest.raises(BudgetExceeded):
        await b.reserve(short, (KEY,), (), 0.5, 1)
    assert await _state(b, KEY) == pytest.approx((0.8, 0.0))
    live = await b.reserve(short, (KEY,), (), 0.2, 1)
    assert live is not None
    assert await redis_client.hexists(bk.reclaimed_key(), dead.rid)
    # a late settle of the reclaimed hold corrects the charge to the actual cost, once
    assert await b.settle(dead, 0.3, 1) is False
    assert await _state(b, KEY) == pytest.approx((0.3, 0.2))
    assert not await redis_client.hexists(bk.reclaimed_key(), dead.rid)
    source, keys, args = b.settle_command(dead, 0.3, 1)
    assert await b.eval_script("settle", source, keys, args) == 0  # a replay changes nothing
    assert await _state(b, KEY) == pytest.approx((0.3, 0.2))


async def test_settle_replays_change_nothing(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    hold = await b.reserve(SETTINGS, (KEY, TEAM), (), 0.4, 10)
    assert hold is not None
    source, keys, args = b.settle_command(hold, 0.1, 5)
    assert await b.eval_script("settle", source, keys, args) == 1
    for _ in range(3):  # a timed-out settle that did run, replayed from the spool
        assert await b.eval_script("settle", source, keys, args) == 0
    for s in (KEY, TEAM):
        assert await _state(b, s) == pytest.approx((0.1, 0.0))


async def test_rate_limits_requests_and_tokens(redis_client: aredis.Redis) -> None:
    with early_in_a_minute():
        await _fill_and_exceed_the_minute(Budgets(redis_client))


async def _fill_and_exceed_the_minute(b: Budgets) -> None:
    lim = LimitScope("k:key_r", "key key_r", rpm=3, tpm=1000)
    holds = [await b.reserve(SETTINGS, (), (lim,), 0.0, 100) for _ in range(3)]
    assert holds[-1] is not None
    assert holds[-1].headers["x-ratelimit-remaining-requests"] == "0"
    assert holds[-1].headers["x-ratelimit-remaining-tokens"] == "700"
    with pytest.raises(RateLimited) as err:
        await b.reserve(SETTINGS, (), (lim,), 0.0, 100)
    assert 1 <= int(err.value.headers["retry-after"]) <= 60
    assert err.value.headers["x-ratelimit-limit-requests"] == "3"
    tok = LimitScope("t:tok", "team tok", tpm=500)
    hold = await b.reserve(SETTINGS, (), (tok,), 0.0, 400)
    assert hold is not None
    with pytest.raises(RateLimited) as err:
        await b.reserve(SETTINGS, (), (tok,), 0.0, 400)
    assert err.value.code == "rate_limit_tokens"
    await b.settle(hold, 0.0, 50)  # the settle corrects 400 worst-case tokens to 50 actual
    assert await b.reserve(SETTINGS, (), (tok,), 0.0, 400) is not None


async def test_soft_limit_alerts_once_per_window(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    s = BudgetSettings(soft_limit_percent=50)
    first = await b.reserve(s, (KEY,), (), 0.3, 1)
    second = await b.reserve(s, (KEY,), (), 0.3, 1)
    third = await b.reserve(s, (KEY,), (), 0.3, 1)
    assert first is not None and second is not None and third is not None
    assert (first.alerts, second.alerts, third.alerts) == ((), (KEY,), ())


async def test_store_down_fail_closed_and_fail_open() -> None:
    b = Budgets(None)
    with pytest.raises(ServiceUnavailable):
        await b.reserve(BudgetSettings(), (KEY,), (), 0.1, 1)
    open_ = BudgetSettings(on_store_error="fail_open", local_allowance_usd=0.25)
    hold = await b.reserve(open_, (KEY,), (), 0.2, 1)
    assert hold is not None and hold.local
    with pytest.raises(ServiceUnavailable):
        await b.reserve(open_, (KEY,), (), 0.2, 1)
    await b.settle(hold, 0.01, 1)  # actual cost frees the rest of the allowance
    assert await b.reserve(open_, (KEY,), (), 0.2, 1) is not None


async def test_scripts_survive_a_script_flush(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    assert await b.reserve(SETTINGS, (KEY,), (), 0.1, 1) is not None
    await redis_client.script_flush()
    assert await b.reserve(SETTINGS, (KEY,), (), 0.1, 1) is not None


async def test_ledger_write_settles_and_rolls_up(redis_client: aredis.Redis) -> None:
    b = Budgets(redis_client)
    ledger = Ledger(redis_client, b)
    hold = await b.reserve(SETTINGS, (KEY,), (), 0.5, 10)
    rec = LedgerRecord(
        ts=1795420717.5, request_id="r1", tenant="t", key_id="key_a", team="search",
        route="auto", tier="hosted", reason="x", score=0.7, model="mock-hosted",
        prompt_tokens=6, completion_tokens=30, estimated=False, cost_usd=0.000315,
        counterfactual_usd=0.000315, cache="miss", latency_ms=1.0, policy_hash="h",
        status=200, error=None, stream=False, fallback=False,
    )  # fmt: skip
    await ledger.write(rec, hold)
    await redis_client.script_flush()  # the next settle must reload its script
    hold2 = await b.reserve(SETTINGS, (KEY,), (), 0.5, 10)
    await ledger.write(LedgerRecord(**{**rec.to_json(), "request_id": "r2"}), hold2)
    assert await _state(b, KEY) == pytest.approx((0.00063, 0.0))
    got = [r async for r in ledger.read()]
    assert [r.request_id for r in got] == ["r1", "r2"] and got[0] == rec
    roll = await ledger.rollups(rec.day)
    assert roll["search"]["mock-hosted"]["requests"] == 2
    assert roll["search"]["mock-hosted"]["cost_nusd"] == 630_000
    assert [r async for r in ledger.read(since_s=rec.ts + 1)] == []
    assert bk.to_nano(rec.cost_usd) == 315_000
