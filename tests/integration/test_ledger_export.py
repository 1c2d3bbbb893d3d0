"""``router ledger export`` reads what the gateway wrote: JSON lines, CSV and Parquet."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aredis

from router.budget.reserve import Budgets
from router.ledger.record import COLUMNS, LedgerRecord
from router.ledger.writer import Ledger
from tests.integration.budget_support import router_cli

pytestmark = [pytest.mark.integration, pytest.mark.clock]
DAY = 86400.0


def _iso_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _rec(i: int, ts: float) -> LedgerRecord:
    return LedgerRecord(
        ts=ts, request_id=f"r{i}", tenant="t", key_id="key_1", team="search", route="auto",
        tier="local", reason="score 0.10 < 0.50 (tier local)", score=0.1, model="mock-local",
        prompt_tokens=10 + i, completion_tokens=20, estimated=i == 2, cost_usd=1e-6 * (i + 1),
        counterfactual_usd=2e-5, cache="miss", latency_ms=1.5, policy_hash="h", status=200,
        error=None, stream=i % 2 == 0, fallback=False,
    )  # fmt: skip


async def test_export_formats_and_time_window(
    redis_server: str, redis_client: aredis.Redis, tmp_path: Path
) -> None:
    ledger = Ledger(redis_client, Budgets(redis_client))
    # Stream ids are the write time on Redis's clock, and the export reads the window by stream
    # id: so the window is Redis's today (UTC), whatever day the test runs on.
    server_s, _us = await redis_client.time()
    t0 = server_s // DAY * DAY
    for i, ts in enumerate((t0 - DAY, t0 + 10, t0 + 20, t0 + DAY + 5)):
        await ledger.write(_rec(i, ts), None)
    # records are then filtered by their own ``ts``
    args = ("ledger", "export", "--since", _iso_day(t0), "--until", _iso_day(t0 + DAY))
    out = await asyncio.to_thread(router_cli, *args, "--format", "jsonl", redis_url=redis_server)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["request_id"] for r in rows] == ["r1", "r2"]
    assert rows[1]["estimated"] is True and rows[0]["cost_usd"] == 2e-6
    assert "exported 2 records" in out.stderr

    out = await asyncio.to_thread(router_cli, *args, "--format", "csv", redis_url=redis_server)
    table = list(csv.DictReader(io.StringIO(out.stdout)))
    assert tuple(table[0]) == COLUMNS and [r["request_id"] for r in table] == ["r1", "r2"]

    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "ledger.parquet"
    await asyncio.to_thread(
        router_cli, *args, "--format", "parquet", "--output", str(path), redis_url=redis_server
    )
    t = pq.read_table(path)
    assert t.column("request_id").to_pylist() == ["r1", "r2"]
    assert t.column("prompt_tokens").to_pylist() == [11, 12]

    everything = await asyncio.to_thread(router_cli, "ledger", "export", redis_url=redis_server)
    assert len(everything.stdout.splitlines()) == 4
