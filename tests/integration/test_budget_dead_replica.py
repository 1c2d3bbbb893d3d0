"""A replica killed with requests in flight: its holds are charged, not forgotten.

Two gateway processes share one Redis and one key. Calls take 1.5 s at the mock upstream; in
a burst, once calls are in flight at the mock, one gateway is SIGKILLed. The upstream
still completes (and, for a real provider, bills) them. Once their holds expire
(``reservation_ttl_s``), the budget scripts charge each at its reserved amount and a surviving
gateway writes one ``reclaimed`` ledger row per hold. Asserted (figures in
docs/reliability.md):

* what the provider served (the mock's request count x the per-request cost) stays within the
  limit plus one hold per dead replica (here: within the limit);
* the budget counter equals the ledger, reclaimed rows included, and stays within the limit;
* one ``reclaimed`` row per hold of the dead replica, charged at the reserved amount;
* the key cannot spend the reclaimed amount again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import orjson
import pytest

from router.ledger.record import LedgerRecord
from router.redis import keys as bk
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import (
    cost_usd,
    gateway,
    make_key,
    own_redis,
    router_cli,
    write_policy,
)
from tests.integration.outage_support import BODY, Books, read_books

pytestmark = pytest.mark.integration
PER_REQUEST_USD = cost_usd("mock-hosted", 6, 30)
TTL_S = 3.0


async def _burst(urls: list[str], secret: str, n: int) -> list[int]:
    headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(i: int) -> int:
            try:
                r = await client.post(urls[i % 2] + "/chat/completions", json=BODY,
                                      headers=headers)  # fmt: skip
                return r.status_code
            except httpx.HTTPError:
                return 0

        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.timeout(180)
def test_a_killed_replicas_holds_are_charged(tmp_path: Path) -> None:
    budget = PER_REQUEST_USD * 20.5
    budgets = f"  reservation_ttl_s: {TTL_S}\n"
    policy = write_policy(
        tmp_path, budgets=budgets, hosted_upstream="mock-tokens-30", hosted_fallbacks="[]"
    )
    with MockUpstreamProcess(latency_ms=1500) as mock, own_redis(tmp_path) as redis_url:
        secret, key_id = make_key(redis_url, "dead", budget)
        g1 = gateway(policy, mock.url, redis_url, tmp_path / "gw1.log").start()
        g2 = gateway(policy, mock.url, redis_url, tmp_path / "gw2.log").start()
        try:

            async def burst_and_kill() -> list[int]:
                # The replica to be killed gets 10 requests first (the budget holds 17), the
                # other 50 more: each replica sends its budget scripts down one connection, so
                # in one simultaneous burst the first to reach Redis may take every hold, and
                # the other refuses all it got (budget_busy) with no call in flight to kill.
                doomed = asyncio.create_task(_burst([g2.url, g2.url], secret, 10))
                await asyncio.to_thread(_wait_for_calls, mock, 8)
                survivor = asyncio.create_task(_burst([g1.url, g1.url], secret, 50))
                # kill once calls are in flight at the mock (each takes 1.5 s there)
                await asyncio.to_thread(_wait_for_calls, mock, 14)
                g2.kill()
                return [*await doomed, *await survivor]

            statuses = asyncio.run(burst_and_kill())
            served = sum(1 for s in statuses if s == 200)
            time.sleep(2.0)  # the mock finishes the dead replica's calls
            provider_calls = int(mock.stats()["total_requests"])
            provider_usd = provider_calls * PER_REQUEST_USD
            books = _wait_for_reclaimed(redis_url, provider_calls - served)
            reclaimed = [r for r in books.records if r.error == "reclaimed"]
            scope = next(k for k in books.scope_spent_nano if f":s:k:{key_id}:" in k)
            counted = bk.from_nano(books.scope_spent_nano[scope])
            ledger = bk.from_nano(books.ledger_nano(key_id))
            hold_usd = max(r.cost_usd for r in reclaimed)
            print(f"served {served}, provider calls {provider_calls} (${provider_usd:.6f}), "
                  f"reclaimed {len(reclaimed)} x ${hold_usd:.6f}, counters ${counted:.6f}, "
                  f"ledger ${ledger:.6f}, limit ${budget:.6f}")  # fmt: skip
            assert len(reclaimed) == provider_calls - served >= 1
            assert all(r.cost_usd >= PER_REQUEST_USD for r in reclaimed)
            assert books.rollups.get("reclaimed_nusd", 0) == sum(
                bk.to_nano(r.cost_usd) for r in reclaimed
            )
            assert provider_usd <= budget + hold_usd + 1e-12  # one hold per dead replica
            assert counted <= budget + 1e-12
            assert abs(counted - ledger) < 1e-9 * len(books.records)
            assert books.scope_reserved_nano[scope] == 0
            after = httpx.post(
                g1.url + "/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {secret}", "x-router-route": "hosted"},
                timeout=30,
            )
            if counted + hold_usd > budget:  # the reclaimed amount cannot be spent again
                assert after.status_code == 429
            _reconcile_with_provider_usage(tmp_path, redis_url, key_id, reclaimed)
        finally:
            g1.stop()
            g2.stop()


def _wait_for_calls(mock: MockUpstreamProcess, n: int, timeout_s: float = 20.0) -> None:
    """Block until the mock has received ``n`` calls (or ``timeout_s`` passed), then 0.2 s."""
    deadline = time.monotonic() + timeout_s
    while int(mock.stats()["total_requests"]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)


def _wait_for_reclaimed(redis_url: str, expected: int, timeout_s: float = 60.0) -> Books:
    """The books once ``expected`` reclaimed rows are in (TTL, then the claim interval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        books = asyncio.run(read_books(redis_url))
        n = sum(1 for r in books.records if r.error == "reclaimed")
        if n >= expected or time.monotonic() > deadline:
            return books
        time.sleep(1.0)


def _reconcile_with_provider_usage(
    tmp: Path, redis_url: str, key_id: str, reclaimed: list[LedgerRecord]
) -> None:
    """``router ledger reconcile``: one hold by hand, the rest from a usage file; the
    counters and the ledger then both hold what the provider billed."""
    listed = router_cli("ledger", "reconcile", "--list", redis_url=redis_url).stdout
    assert len(listed.splitlines()) == len(reclaimed)
    first, rest = reclaimed[0], reclaimed[1:]
    router_cli("ledger", "reconcile", first.request_id, "--cost-usd", repr(PER_REQUEST_USD),
               "--completion-tokens", "30", "--note", "by hand", redis_url=redis_url)  # fmt: skip
    usage = tmp / "usage.jsonl"
    usage.write_text("".join(
        orjson.dumps({"request_id": r.request_id, "cost_usd": PER_REQUEST_USD}).decode() + "\n"
        for r in rest
    ))  # fmt: skip
    router_cli("ledger", "reconcile", "--usage", str(usage), redis_url=redis_url)
    again = router_cli("ledger", "reconcile", "--list", redis_url=redis_url).stdout
    assert again.strip() == ""
    books = asyncio.run(read_books(redis_url))
    scope = next(k for k in books.scope_spent_nano if f":s:k:{key_id}:" in k)
    counted = books.scope_spent_nano[scope]
    assert abs(counted - books.ledger_nano(key_id)) <= len(books.records)
    reconciled = [r for r in books.records if r.error == "reconciled"]
    assert len(reconciled) == len(reclaimed)
    net = sum(bk.to_nano(r.cost_usd) for r in books.records if r.error in ("reclaimed",
              "reconciled"))  # fmt: skip
    assert abs(net - len(reclaimed) * bk.to_nano(PER_REQUEST_USD)) <= 2 * len(reclaimed)
    print(f"reconciled {len(reclaimed)} holds: reclaimed spend now ${net / 1e9:.6f}")
