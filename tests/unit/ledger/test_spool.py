"""The ledger spool on a real file system: durable, ordered, bounded, shared safely."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from router.ledger.spool import Spool, SpoolEntry


def _spool_files(directory: Path) -> list[Path]:
    return list(directory.glob("spool-*"))


def _entry(i: int) -> SpoolEntry:
    return SpoolEntry(f"w{i}", f"r{i}", [("ledger", ["k1", "k2"], [1, "x", b"bytes"])])


async def test_entries_come_back_in_order_and_the_file_goes(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    await spool.append([_entry(0), _entry(1)])
    await spool.append([_entry(2)])
    assert (spool.spooled, spool.pending) == (3, 3) and spool.size_bytes > 0
    files = await spool.take()
    assert len(files) == 1
    assert [e.write_id for e in files[0].entries] == ["w0", "w1", "w2"]
    assert files[0].entries[0].commands == [("ledger", ["k1", "k2"], [1, "x", "bytes"])]
    await spool.append([_entry(3)])  # a new file: the taken one is no longer written
    spool.replayed_file(files[0], 3)
    assert (spool.replayed, spool.pending) == (3, 1)
    again = await spool.take()
    assert [e.write_id for f in again for e in f.entries] == ["w3"]
    spool.replayed_file(again[0], 1)
    assert spool.size_bytes == 0 and not _spool_files(tmp_path)


async def test_a_file_someone_holds_is_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "spool-1-999999.jsonl"
    other.write_bytes(_entry(9).line())
    fd = os.open(other, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a live process still writes it
    try:
        assert await Spool(tmp_path).take() == []
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    taken = await Spool(tmp_path).take()  # now it is an orphan: anyone replays it
    assert [e.write_id for e in taken[0].entries] == ["w9"]
    taken[0].done(replayed=False)
    assert other.exists()  # not replayed: kept


async def test_oldest_file_first_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "spool-200-1.jsonl").write_bytes(_entry(2).line())
    (tmp_path / "spool-100-1.jsonl").write_bytes(_entry(1).line() + _entry(5).line()[:-9])
    files = await Spool(tmp_path).take()
    assert [[e.write_id for e in f.entries] for f in files] == [["w1"], ["w2"]]
    for f in files:
        f.done(replayed=False)


async def test_full_past_the_bound(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=200)
    before = spool.full
    await spool.append([_entry(i) for i in range(5)])
    assert (before, spool.full) == (False, True) and spool.size_bytes > 200
    assert Spool(tmp_path, max_bytes=200).full  # a restarted process sees it too


async def test_the_gauges_follow_the_spool(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from router.ledger.spool import SpoolCollector

    spool = Spool(tmp_path, max_bytes=10_000)
    registry = CollectorRegistry()
    registry.register(SpoolCollector(spool))

    def gauges() -> dict[str, float]:
        names = ("bytes", "max_bytes", "pending")
        got = {n: registry.get_sample_value(f"router_ledger_spool_{n}") for n in names}
        got["spooled"] = registry.get_sample_value("router_ledger_spooled")
        got["replayed"] = registry.get_sample_value("router_ledger_replayed")
        assert all(v is not None for v in got.values()), got
        return {k: float(v or 0) for k, v in got.items()}

    assert gauges() == {"bytes": 0, "max_bytes": 10_000, "pending": 0, "spooled": 0, "replayed": 0}
    await spool.append([_entry(0), _entry(1)])
    after = gauges()
    assert after["bytes"] == spool.size_bytes > 0
    assert (after["pending"], after["spooled"], after["replayed"]) == (2, 2, 0)
    files = await spool.take()
    spool.replayed_file(files[0], 2)
    assert gauges() == {"bytes": 0, "max_bytes": 10_000, "pending": 0, "spooled": 2, "replayed": 2}
