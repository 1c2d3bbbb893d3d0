"""No overshoot: a burst over two gateway processes sharing one Redis, one of them killed.

Every request is routed to ``mock-hosted`` (30 completion tokens, about $0.000315) and the key's
budget covers about 50 of them. Whatever the interleaving, and even when a gateway process is
SIGKILLed mid-burst (its reservations are then held until they expire), the spend recorded in
the ledger and in the budget counters, and the spend the clients observed, stay within budget.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aredis

from router.budget.reserve import Budgets, BudgetScope
from router.ledger.writer import Ledger
from router.policy.sections.budgets import BudgetSettings
from router.redis import keys as bk
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import (
    cost_usd,
    gateway,
    make_key,
    own_redis,
    skip_unless_slow_selected,
    write_policy,
)
from tests.integration.outage_support import read_books

pytestmark = pytest.mark.integration
BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 32}
PER_REQUEST_USD = cost_usd("mock-hosted", 6, 30)


Usage = dict[str, int]


async def _burst(
    urls: list[str], secret: str, n: int, kill_after: int | None, kill: Callable[[], None]
) -> list[tuple[int, Usage | None]]:
    """Send ``n`` requests at once, round-robin over ``urls``; call ``kill`` after
    ``kill_after`` responses. Returns (status, usage) per request (status 0: no answer)."""
    done = 0
    killed = asyncio.Event()
    headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> tuple[int, Usage | None]:
            nonlocal done
            try:
                r = await client.post(urls[i % len(urls)] + "/chat/completions", json=BODY,
                                      headers=headers)  # fmt: skip
                result = (r.status_code, r.json().get("usage") if r.status_code == 200 else None)
            except httpx.HTTPError:
                result = (0, None)
            done += 1
            if kill_after is not None and done >= kill_after and not killed.is_set():
                killed.set()
                await asyncio.to_thread(kill)
            return result

        return await asyncio.gather(*(one(i) for i in range(n)))


def run_burst(tmp_path: Path, n: int, covers: int, kill: bool, ttl_s: float = 8.0) -> None:
    budget = PER_REQUEST_USD * covers + PER_REQUEST_USD / 2
    budgets = (
        f"  teams:\n    burst: {{limit_usd: {budget * 3}}}\n"
        f"  global: {{limit_usd: {budget * 10}, window: day}}\n"
        f"  reservation_ttl_s: {ttl_s}\n"
    )
    policy = write_policy(
        tmp_path, budgets=budgets, hosted_upstream="mock-tokens-30", hosted_fallbacks="[]"
    )
    with MockUpstreamProcess(latency_ms=40) as mock, own_redis(tmp_path) as redis_url:
        secret, _ = make_key(redis_url, "burst", budget)
        g1 = gateway(policy, mock.url, redis_url, tmp_path / "gw1.log").start()
        g2 = gateway(policy, mock.url, redis_url, tmp_path / "gw2.log").start()
        try:
            started = time.monotonic()
            results = asyncio.run(
                _burst([g1.url, g2.url], secret, n, n // 5 if kill else None, g2.kill)
            )
            burst_s = time.monotonic() - started
            ok = [u for s, u in results if s == 200 and u is not None]
            statuses = {s for s, _ in results}
            # 503: the policy is fail_closed, and a budget store that answers too slowly under
            # a 500-request burst on 2 cores counts as unreachable. Refusing is correct; the
            # property under test is that recorded spend never exceeds the budget.
            assert statuses <= {200, 429, 503, 0}, statuses
            observed = sum(
                cost_usd("mock-hosted", u["prompt_tokens"], u["completion_tokens"]) for u in ok
            )
            print(f"burst of {n}: {len(ok)} answered, ${observed:.6f} of ${budget:.6f} in "
                  f"{burst_s:.1f} s")  # fmt: skip
            # Liveness: a 429 must mean the key's budget was really taken. Which process won
            # the holds is a race, and the killed one's holds are lost with it, so the count
            # of answers alone proves nothing; the budget's own books (spent plus holds still
            # in force) must show it was used.
            assert ok, statuses
            if 429 in statuses:
                used = asyncio.run(_key_scope_used_usd(redis_url))
                assert used >= budget / 2, (used, budget, len(ok))
            if burst_s < ttl_s:  # the killed process's holds were still in force throughout
                assert observed <= budget + 1e-12
            asyncio.run(_check_recorded(redis_url, budget, len(ok), kill, ttl_s))
        finally:
            g1.stop()
            g2.stop()


async def _key_scope_used_usd(redis_url: str) -> float:
    """Spent plus reserved on the key's budget scope, in USD."""
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        scope_keys = [k async for k in client.scan_iter(f"{bk.BUDGET_PREFIX}:s:k:*")]
        assert len(scope_keys) == 1
        fields = await client.hmget(scope_keys[0], ["spent", "reserved"])
        return sum(bk.from_nano(int(v or 0)) for v in fields)
    finally:
        await client.aclose()


async def _check_recorded(
    redis_url: str, budget: float, answered: int, killed: bool, ttl_s: float
) -> None:
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        ledger = Ledger(client, Budgets(client))
        await asyncio.sleep(0.5)  # background ledger writes of the survivor
        records = [r async for r in ledger.read()]
        spent = sum(r.cost_usd for r in records)
        assert spent <= budget + 1e-12
        ids = [r.request_id for r in records]
        assert len(ids) == len(set(ids))
        if not killed:
            assert sum(1 for r in records if r.status == 200) == answered
        scope_keys = [k async for k in client.scan_iter(f"{bk.BUDGET_PREFIX}:s:k:*")]
        assert len(scope_keys) == 1
        counted = bk.from_nano(int(await client.hget(scope_keys[0], "spent") or 0))
        assert counted <= budget + 1e-12
        assert abs(counted - spent) < 1e-9 * (len(records) + 1)
        if killed:  # the dead process's holds expire and are reclaimed by the next script run
            await asyncio.sleep(ttl_s + 0.5)
            b = Budgets(client)
            scope = BudgetScope("g", "global", 1.0, "day")
            hold = await b.reserve(BudgetSettings(), (scope,), (), 0.0, 0)
            assert hold is not None
            await b.settle(hold, 0.0, 0)
            assert int(await client.hget(scope_keys[0], "reserved") or 0) == 0
    finally:
        await client.aclose()


@pytest.mark.timeout(300)
def test_no_overshoot_two_gateways_one_killed(tmp_path: Path) -> None:
    """The default-run size: 200 requests at once, budget for about 20, one process killed."""
    run_burst(tmp_path, n=200, covers=20, kill=True)


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("kill", [True, False, False], ids=["killed", "run2", "run3"])
def test_no_overshoot_500_concurrent(
    tmp_path: Path, kill: bool, request: pytest.FixtureRequest
) -> None:
    """The issue's goal: 500 concurrent requests over 2 gateways, budget for about 50.

    The run with a gateway killed mid-burst executes in every CI run; the repeats run with
    ``-m slow`` or ``ROUTER_SLOW_TESTS=1``.
    """
    if not kill:
        skip_unless_slow_selected(request)
    run_burst(tmp_path, n=500, covers=50, kill=kill, ttl_s=30.0)


async def _retrying_burst(urls: list[str], secret: str, n: int) -> Counter[str]:
    """``n`` requests at once over ``urls``; a 429 that says ``x-should-retry: true`` is retried
    after its ``retry-after`` (as OpenAI's SDKs do). Returns the final outcome per request."""
    headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    outcomes: Counter[str] = Counter()
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> None:
            for _ in range(30):
                try:
                    r = await client.post(urls[i % len(urls)] + "/chat/completions", json=BODY,
                                          headers=headers)  # fmt: skip
                except httpx.HTTPError:  # a burst of 500 connections overflows the backlog
                    outcomes["transport_retries"] += 1
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 200:
                    outcomes["ok"] += 1
                    return
                code = r.json()["error"]["code"]
                if r.status_code != 429 or r.headers.get("x-should-retry") != "true":
                    outcomes[code] += 1
                    return
                assert code == "budget_busy" and int(r.headers["retry-after"]) >= 1
                outcomes["busy_retries"] += 1
                await asyncio.sleep(float(r.headers["retry-after"]))
            outcomes["gave_up"] += 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return outcomes


@pytest.mark.timeout(300)
def test_burst_refusals_are_honest_and_retries_use_the_budget(tmp_path: Path) -> None:
    """500 requests at once over two gateways on one key with budget for about 50: refusals
    while holds are in flight say ``budget_busy`` (retry), ``budget_exceeded`` only once spent
    leaves no room; clients that retry spend the budget to within one request's hold."""
    budget = PER_REQUEST_USD * 50.5
    policy = write_policy(
        tmp_path,
        budgets="  reservation_ttl_s: 60\n",
        hosted_upstream="mock-tokens-30",
        hosted_fallbacks="[]",
    )
    with MockUpstreamProcess(latency_ms=40) as mock, own_redis(tmp_path) as redis_url:
        secret, key_id = make_key(redis_url, "burst", budget)
        g1 = gateway(policy, mock.url, redis_url, tmp_path / "gw1.log").start()
        g2 = gateway(policy, mock.url, redis_url, tmp_path / "gw2.log").start()
        try:
            outcomes = asyncio.run(_retrying_burst([g1.url, g2.url], secret, 500))
            books = asyncio.run(read_books(redis_url))
            scope = next(k for k in books.scope_spent_nano if f":s:k:{key_id}:" in k)
            spent = bk.from_nano(books.scope_spent_nano[scope])
            unused = (budget - spent) / budget
            print(f"retrying burst of 500: {dict(outcomes)}; spent ${spent:.6f} of "
                  f"${budget:.6f} ({unused:.2%} unused)")  # fmt: skip
            # 503: fail_closed, and a budget store too slow under this burst on 2 cores counts
            # as unreachable (see run_burst)
            allowed = {"ok", "busy_retries", "budget_exceeded", "gave_up", "transport_retries",
                       "budget_store_unavailable"}  # fmt: skip
            assert set(outcomes) <= allowed, outcomes
            assert outcomes["gave_up"] == 0
            assert spent <= budget + 1e-12
            worst_case = bk.from_nano(max(r for r in books.scope_reserved_nano.values()) or 0)
            assert worst_case == 0  # nothing left held
            assert budget - spent < 2 * PER_REQUEST_USD  # within one request's hold
            assert outcomes["ok"] == sum(1 for r in books.records if r.status == 200)
        finally:
            g1.stop()
            g2.stop()
