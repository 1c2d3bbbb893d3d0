"""``router ledger export``: ledger records between two times as JSON lines, CSV or Parquet.

Records are streamed page by page (``XRANGE``, 1,000 at a time) into the output, so an export
of millions of records needs the memory of one page, not of the whole range.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from router.ledger.record import COLUMNS, LedgerRecord

FORMATS = ("jsonl", "csv", "parquet")
PAGE = 1000


def parse_time(text: str) -> float:
    """``2026-11-23``, ``2026-11-23T10:00:00[Z|+01:00]``, ``now``, or an age ``24h``/``7d``/
    ``30m`` (``-24h`` too: that much before now) -> Unix seconds; naive times are UTC."""
    t = text.strip()
    now = datetime.now(UTC)
    if t == "now":
        return now.timestamp()
    age = t.removeprefix("-")
    if age[-1:] in ("m", "h", "d") and age[:-1].isdigit():
        unit = {"m": "minutes", "h": "hours", "d": "days"}[age[-1]]
        return (now - timedelta(**{unit: int(age[:-1])})).timestamp()
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        d = datetime.combine(date.fromisoformat(t), datetime.min.time())
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


class Sink(Protocol):
    """Where exported records go, one batch at a time."""

    def write(self, records: list[LedgerRecord]) -> None:
        """Append ``records``."""
        ...

    def close(self) -> None:
        """Finish the output (footer, flush)."""
        ...


class JsonlSink:
    """One JSON object per line."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def write(self, records: list[LedgerRecord]) -> None:
        """Append ``records``."""
        self.out.write(b"".join(orjson.dumps(r.to_json()) + b"\n" for r in records))

    def close(self) -> None:
        """Flush."""
        self.out.flush()


class CsvSink:
    """CSV with a header row (``COLUMNS``); None as an empty cell."""

    def __init__(self, out: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.DictWriter(self._text, fieldnames=list(COLUMNS))
        self._writer.writeheader()

    def write(self, records: list[LedgerRecord]) -> None:
        """Append ``records``."""
        for r in records:
            self._writer.writerow({k: ("" if v is None else v) for k, v in r.to_json().items()})

    def close(self) -> None:
        """Flush and let go of the byte stream (without closing it)."""
        self._text.flush()
        self._text.detach()


class ParquetSink:
    """A Parquet file with typed columns, one row group per batch (needs ``pyarrow``)."""

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa  # type: ignore[import-untyped]
            import pyarrow.parquet as pq  # type: ignore[import-untyped]
        except ImportError as exc:  # an optional dependency
            raise RuntimeError("Parquet export needs pyarrow: pip install pyarrow") from exc
        types = {
            "ts": pa.float64(), "score": pa.float64(), "cost_usd": pa.float64(),
            "counterfactual_usd": pa.float64(), "latency_ms": pa.float64(),
            "prompt_tokens": pa.int64(), "completion_tokens": pa.int64(), "status": pa.int64(),
            "estimated": pa.bool_(), "stream": pa.bool_(), "fallback": pa.bool_(),
            "unmetered": pa.bool_(), "cache_read_tokens": pa.int64(),
            "cache_write_tokens": pa.int64(),
        }  # fmt: skip
        self._pa = pa
        self.schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
        self._writer = pq.ParquetWriter(path, self.schema)

    def write(self, records: list[LedgerRecord]) -> None:
        """Append ``records`` as a row group."""
        if records:
            rows = [r.to_json() for r in records]
            self._writer.write_table(self._pa.Table.from_pylist(rows, schema=self.schema))

    def close(self) -> None:
        """Write the footer."""
        self._writer.close()


def sink_for(fmt: str, out: IO[bytes] | None, path: Path | None) -> Sink:
    """The sink of ``fmt``: to ``path`` (Parquet needs one) or the byte stream ``out``."""
    if fmt == "parquet":
        if path is None:
            raise ValueError("--format parquet needs --output FILE")
        return ParquetSink(path)
    assert out is not None
    return JsonlSink(out) if fmt == "jsonl" else CsvSink(out)


async def export(records: AsyncIterator[LedgerRecord], sink: Sink) -> int:
    """Copy ``records`` into ``sink`` in pages; return the count."""
    n = 0
    page: list[LedgerRecord] = []
    async for rec in records:
        page.append(rec)
        if len(page) >= PAGE:
            sink.write(page)
            n += len(page)
            page = []
    sink.write(page)
    n += len(page)
    sink.close()
    return n


def write_all(records: Iterable[LedgerRecord], sink: Sink) -> int:
    """Write ``records`` (already in memory) to ``sink``; return the count."""
    batch = list(records)
    sink.write(batch)
    sink.close()
    return len(batch)


def write_jsonl(records: Iterable[LedgerRecord], out: IO[bytes]) -> int:
    """JSON lines of ``records`` to ``out``; return the count."""
    return write_all(records, JsonlSink(out))


def write_csv(records: Iterable[LedgerRecord], out: IO[bytes]) -> int:
    """CSV of ``records`` to ``out``; return the count."""
    return write_all(records, CsvSink(out))


def write_parquet(records: Iterable[LedgerRecord], path: Path) -> int:
    """Parquet of ``records`` at ``path``; return the count."""
    return write_all(records, ParquetSink(path))


def row(record: LedgerRecord) -> dict[str, Any]:
    """One record as an export row."""
    return record.to_json()
