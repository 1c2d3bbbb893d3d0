"""``router ledger export``: ledger records between two times as JSON lines, CSV or Parquet."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from router.ledger.record import COLUMNS, LedgerRecord

FORMATS = ("jsonl", "csv", "parquet")


def parse_time(text: str) -> float:
    """``2026-11-23``, ``2026-11-23T10:00:00[Z|+01:00]``, ``now`` or ``-24h``/``-7d``/``-30m``
    (relative to now) -> Unix seconds; naive times are UTC."""
    t = text.strip()
    now = datetime.now(UTC)
    if t == "now":
        return now.timestamp()
    if t.startswith("-") and t[-1:] in ("m", "h", "d") and t[1:-1].isdigit():
        unit = {"m": "minutes", "h": "hours", "d": "days"}[t[-1]]
        return (now - timedelta(**{unit: int(t[1:-1])})).timestamp()
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        d = datetime.combine(date.fromisoformat(t), datetime.min.time())
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def _row(rec: LedgerRecord) -> dict[str, Any]:
    return rec.to_json()


def write_jsonl(records: Iterable[LedgerRecord], out: IO[bytes]) -> int:
    """Write one JSON object per line; return the count."""
    n = 0
    for rec in records:
        out.write(orjson.dumps(_row(rec)) + b"\n")
        n += 1
    return n


def write_csv(records: Iterable[LedgerRecord], out: IO[bytes]) -> int:
    """Write CSV with a header row (``COLUMNS``); return the count."""
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS))
    writer.writeheader()
    n = 0
    for rec in records:
        writer.writerow({k: ("" if v is None else v) for k, v in _row(rec).items()})
        n += 1
    text.detach()
    return n


def write_parquet(records: Iterable[LedgerRecord], path: Path) -> int:
    """Write a Parquet file with typed columns (needs ``pyarrow``); return the count."""
    try:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]
    except ImportError as exc:  # an optional dependency
        raise RuntimeError("Parquet export needs pyarrow: pip install pyarrow") from exc
    rows = [_row(r) for r in records]
    schema = pa.schema(
        [
            ("ts", pa.float64()),
            ("request_id", pa.string()),
            ("tenant", pa.string()),
            ("key_id", pa.string()),
            ("team", pa.string()),
            ("route", pa.string()),
            ("tier", pa.string()),
            ("reason", pa.string()),
            ("score", pa.float64()),
            ("model", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("completion_tokens", pa.int64()),
            ("estimated", pa.bool_()),
            ("cost_usd", pa.float64()),
            ("counterfactual_usd", pa.float64()),
            ("cache", pa.string()),
            ("latency_ms", pa.float64()),
            ("policy_hash", pa.string()),
            ("status", pa.int64()),
            ("error", pa.string()),
            ("stream", pa.bool_()),
            ("fallback", pa.bool_()),
        ]
    )
    assert tuple(schema.names) == COLUMNS
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path)
    return len(rows)


async def collect(records: AsyncIterator[LedgerRecord]) -> list[LedgerRecord]:
    """All of ``records`` in a list."""
    return [r async for r in records]
