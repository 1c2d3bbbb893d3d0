"""Faults on real processes: Redis killed and restarted under load, gateway replicas killed.

Shared by ``test_ledger_outage.py`` and ``test_budget_dead_replica.py``; the figures they
assert are written down in ``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as aredis

from router.budget.reserve import Budgets
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger
from router.redis import keys as bk
from router.redis import keys as lk
from router.redis.embedded import EmbeddedRedis
from router.testing.gateway_process import GatewayProcess

BODY = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 32}


def kill_redis(server: EmbeddedRedis) -> None:
    """SIGKILL the server (no shutdown, no final fsync), then release its files."""
    pid = server.pid
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    server.stop()


@dataclass
class LoadResult:
    """What the clients saw: request id -> status (0: no HTTP answer)."""

    statuses: dict[str, int] = field(default_factory=dict)
    codes: Counter[str] = field(default_factory=Counter)

    @property
    def ok_ids(self) -> set[str]:
        """Request ids answered 200."""
        return {rid for rid, s in self.statuses.items() if s == 200}


async def steady_load(
    url: str,
    headers: dict[str, str],
    rate_per_s: float,
    duration_s: float,
    events: dict[float, Callable[[], object]],
    result: LoadResult,
) -> None:
    """Send ``rate_per_s`` requests a second for ``duration_s`` seconds, each with its own
    ``x-request-id``; run ``events[t]`` ``t`` seconds in, on the event loop's own thread (an
    embedded Redis started from a worker thread would die with that thread: PDEATHSIG)."""
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> None:
            rid = uuid.uuid4().hex
            try:
                r = await client.post(
                    url + "/chat/completions", json=BODY, headers={**headers, "x-request-id": rid}
                )
                result.statuses[rid] = r.status_code
                if r.status_code != 200:
                    result.codes[str(r.json().get("error", {}).get("code"))] += 1
            except httpx.HTTPError:
                result.statuses[rid] = 0

        async def fire_events() -> None:
            start = time.monotonic()
            for at, action in sorted(events.items()):
                await asyncio.sleep(max(0.0, start + at - time.monotonic()))
                action()

        tasks = [asyncio.create_task(fire_events())]
        start = time.monotonic()
        n = int(rate_per_s * duration_s)
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate_per_s - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)


def wait_ready(gw: GatewayProcess, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll ``/readyz`` until 200 with an empty spool; returns its last body."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            r = httpx.get(gw.base_url + "/readyz", timeout=5)
            body = r.json()
            spool = body.get("checks", {}).get("ledger_spool", {})
            if r.status_code == 200 and not spool.get("bytes"):
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready with an empty spool in {timeout_s} s: {body}")


@dataclass
class Books:
    """The ledger and the budget counters, read back from Redis."""

    records: list[LedgerRecord]
    scope_spent_nano: dict[str, int]
    scope_reserved_nano: dict[str, int]
    rollups: dict[str, int]
    """Metric -> total over every team, model and day (``cost_nusd``, ``unmetered_nusd``...)."""

    def rows_by_request(self) -> Counter[str]:
        """How many rows each request id has."""
        return Counter(r.request_id for r in self.records)

    def ledger_nano(self, key_id: str | None = None) -> int:
        """Sum of row costs (nano-dollars), optionally of one key."""
        return sum(
            bk.to_nano(r.cost_usd) for r in self.records if key_id is None or r.key_id == key_id
        )


async def read_books(redis_url: str) -> Books:
    """Read every ledger row, every budget scope counter and the rollup totals."""
    client = aredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        records = [r async for r in Ledger(client, Budgets(client)).read()]
        spent: dict[str, int] = {}
        reserved: dict[str, int] = {}
        async for key in client.scan_iter(f"{bk.BUDGET_PREFIX}:s:*"):
            v = await client.hmget(key, ["spent", "reserved"])
            spent[key] = int(v[0] or 0)
            reserved[key] = int(v[1] or 0)
        totals: Counter[str] = Counter()
        async for key in client.scan_iter(f"{lk.LEDGER_PREFIX}:r:*"):
            fields: dict[str, str] = await client.hgetall(key)  # type: ignore[assignment]
            for field_, value in fields.items():
                totals[field_.rpartition("|")[2]] += int(value)
        return Books(records, spent, reserved, dict(totals))
    finally:
        await client.aclose()
