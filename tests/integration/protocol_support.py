"""Shared pieces of the protocol adapter tests (Responses, embeddings)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aredis

from router.budget.reserve import Budgets
from router.ledger.record import LedgerRecord
from router.ledger.writer import Ledger


def ledger_rows(redis_url: str) -> list[LedgerRecord]:
    """Every ledger row in the Redis at ``redis_url``, oldest first."""

    async def read() -> list[LedgerRecord]:
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            return [r async for r in Ledger(client, Budgets(client)).read()]
        finally:
            await client.aclose()

    return asyncio.run(read())


def ledger_row(redis_url: str, request_id: str, timeout_s: float = 15.0) -> LedgerRecord:
    """The ledger row of ``request_id``, once it is written (rows are written after the
    response, in the background)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [r for r in ledger_rows(redis_url) if r.request_id == request_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no ledger row for {request_id} in {timeout_s} s")
