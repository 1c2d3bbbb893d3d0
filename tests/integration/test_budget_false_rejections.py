"""False rejections stay <= 2 % when the actual cost is about 30 % of the reservation.

A rejection is false when a clairvoyant admission (one that knew every request's actual cost
and admitted them in arrival order while they fit) would have served the request. With equal
costs that is ``min(N, floor(budget / cost))`` admissions; the gateway's shortfall against it,
over the N requests sent, is the false-rejection rate. Eight clients send requests back to back
over two gateway processes, as steady traffic does.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aredis

from router.budget.estimate import input_tokens_upper_bound, worst_case_usd
from router.budget.reserve import Budgets
from router.ledger.writer import Ledger
from router.policy.load import load_policy
from router.protocol.chat_request import parse_chat_request
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import (
    cost_usd,
    gateway,
    make_key,
    own_redis,
    write_policy,
)

pytestmark = pytest.mark.integration
BODY = {
    "model": "auto",
    "messages": [{"role": "user", "content": "hello there"}],
    "max_tokens": 100,
}
ACTUAL_USD = cost_usd("mock-hosted", 6, 30)


async def _closed_loop(urls: list[str], secret: str, n: int, workers: int) -> list[int]:
    headers = {"authorization": f"Bearer {secret}", "x-router-route": "hosted"}
    statuses: list[int] = []
    queue = list(range(n))
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker(w: int) -> None:
            while queue:
                i = queue.pop()
                r = await client.post(urls[i % len(urls)] + "/chat/completions", json=BODY,
                                      headers=headers)  # fmt: skip
                statuses.append(r.status_code)

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return statuses


@pytest.mark.timeout(300)
def test_false_rejections_at_30_percent_of_the_reservation(tmp_path: Path) -> None:
    n, covers = 400, 50
    budget = ACTUAL_USD * covers + ACTUAL_USD / 3
    policy = write_policy(
        tmp_path, hosted_upstream="mock-tokens-30", hosted_fallbacks="[]",
        budgets="  reservation_ttl_s: 60\n",
    )  # fmt: skip
    with MockUpstreamProcess(latency_ms=5) as mock, own_redis(tmp_path) as redis_url:
        loaded = load_policy(policy, env={"MOCK_UPSTREAM_URL": mock.url})
        hosted = loaded.policy.model("mock-hosted")
        assert hosted is not None
        req = parse_chat_request(orjson.dumps(BODY))
        reservation = worst_case_usd(req, (hosted,), input_tokens_upper_bound(req))
        assert 0.25 <= ACTUAL_USD / reservation <= 0.35, ACTUAL_USD / reservation

        secret, _ = make_key(redis_url, "fr", budget)
        with (
            gateway(policy, mock.url, redis_url, tmp_path / "gw1.log") as g1,
            gateway(policy, mock.url, redis_url, tmp_path / "gw2.log") as g2,
        ):
            statuses = asyncio.run(_closed_loop([g1.url, g2.url], secret, n, workers=8))

        assert set(statuses) <= {200, 429}
        admitted = statuses.count(200)
        oracle = min(n, math.floor(budget / ACTUAL_USD))
        false_rate = max(0, oracle - admitted) / n
        print(f"admitted {admitted} of {n}, oracle {oracle}, false rejections {false_rate:.2%}")
        assert false_rate <= 0.02
        assert admitted * ACTUAL_USD <= budget + 1e-12

        async def recorded() -> float:
            client = aredis.Redis.from_url(redis_url, decode_responses=True)
            await asyncio.sleep(0.3)
            total = 0.0
            async for r in Ledger(client, Budgets(client)).read():
                total += r.cost_usd
            await client.aclose()
            return total

        assert asyncio.run(recorded()) <= budget + 1e-12
