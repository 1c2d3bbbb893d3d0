"""Ledger records round-trip through stream fields and export to JSONL, CSV and Parquet."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from router.keys.model import VirtualKey, parse_expiry, secret_digest
from router.keys.requests import KeyCreate, KeyUpdate
from router.ledger.export import parse_time, write_csv, write_jsonl, write_parquet
from router.ledger.record import COLUMNS, LedgerRecord


def _rec(**kw: object) -> LedgerRecord:
    base: dict[str, object] = {
        "ts": 1795420717.5,
        "request_id": "r1",
        "tenant": "t",
        "key_id": "key_1",
        "team": "search",
        "route": "auto",
        "tier": "hosted",
        "reason": "score 0.71 >= 0.50 (tier hosted)",
        "score": 0.71,
        "model": "mock-hosted",
        "prompt_tokens": 6,
        "completion_tokens": 30,
        "estimated": False,
        "cost_usd": 0.000315,
        "counterfactual_usd": 0.000315,
        "cache": "miss",
        "latency_ms": 3.2,
        "policy_hash": "abc",
        "status": 200,
        "error": None,
        "stream": True,
        "fallback": False,
    }
    base.update(kw)
    return LedgerRecord(**base)  # type: ignore[arg-type]


def test_stream_fields_round_trip_exactly() -> None:
    for rec in (_rec(), _rec(key_id=None, team=None, route=None, tier=None, score=None)):
        assert LedgerRecord.from_fields(rec.to_fields()) == rec
    assert _rec().day == "20261123"


def test_exports(tmp_path: Path) -> None:
    recs = [_rec(), _rec(request_id="r2", error="client_disconnected", status=499)]
    buf = io.BytesIO()
    assert write_jsonl(recs, buf) == 2
    lines = buf.getvalue().splitlines()
    assert orjson.loads(lines[1])["error"] == "client_disconnected"
    buf = io.BytesIO()
    assert write_csv(recs, buf) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue().decode())))
    assert tuple(rows[0]) == COLUMNS and rows[0]["cost_usd"] == "0.000315"
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "x.parquet"
    assert write_parquet(recs, path) == 2
    table = pq.read_table(path)
    assert table.column("cost_usd").to_pylist() == [0.000315, 0.000315]
    assert table.column("status").to_pylist() == [200, 499]


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-23") == datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-23T01:00:00Z") == datetime(2026, 11, 23, 1, tzinfo=UTC).timestamp()
    assert abs(parse_time("-1h") - (datetime.now(UTC).timestamp() - 3600)) < 5
    assert abs(parse_time("1h") - (datetime.now(UTC).timestamp() - 3600)) < 5


def test_virtual_key_fields_round_trip_and_checks() -> None:
    key = VirtualKey(
        id="key_1",
        team="search",
        tenant="acme",
        digest=secret_digest("sk-x"),
        budget_usd=2.5,
        window="day",
        rpm=10,
        models=("auto", "mock-local"),
        expires_at=parse_expiry(_days_from_now(365)),
    )
    back = VirtualKey.from_redis(key.to_redis())
    assert back == key
    assert back.active() and back.allows("auto") and not back.allows("gpt-4o")
    assert not key.updated(revoked=True).active()
    assert not key.updated(expires_at=parse_expiry(_days_from_now(-1))).active()
    assert "digest" not in key.public() and "sk-x" not in str(key.to_redis())


def _days_from_now(days: int) -> str:
    """An ISO date ``days`` from today (UTC): expiries stay in the future (or past) for good."""
    return (datetime.now(UTC) + timedelta(days=days)).date().isoformat()


def test_key_requests_validate() -> None:
    spec = KeyCreate.model_validate({"team": "a", "models": "x, y", "expires": _days_from_now(30)})
    assert spec.models == ("x", "y") and spec.expires_at is not None
    assert KeyUpdate.model_validate({"rpm": None}).changes() == {"rpm": None}
    with pytest.raises(ValueError):
        KeyCreate.model_validate({"team": "a", "window": "year"})
