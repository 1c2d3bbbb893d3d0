"""The ledger's local durable spool: what Redis could not take, kept on disk until it can.

When a settle or a ledger append fails (Redis unreachable, a timeout, a restart), the writer
appends the request's Redis commands (settle or fail-open charge, then the ledger script) as
one JSON line to an append-only file in ``<data_dir>/ledger-spool/``, one file per process,
fsynced once per batch. Every command is idempotent (the ledger script refuses a second row for
the same write id; a settle of a closed hold changes nothing; a charge is applied once per
reservation id), so a line may be replayed any number of times: after a crash mid-replay the
whole file is simply replayed again.

Each file is locked (``flock``) by the process that writes it. A file nobody holds belongs to a
process that died or restarted: any gateway sharing the directory replays it (oldest file
first, lines in order) and deletes it. The size is bounded by ``max_bytes``: past it the spool
is *full*, ``/readyz`` fails and no new ``fail_open`` request is admitted; lines of requests
already in flight are still written (a record is never dropped).

Line format: ``{"id": write id, "rid": request id, "cmds": [[name, [keys], [args]], ...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger("router.ledger")
SPOOL_DIR = "ledger-spool"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
"""About 200,000 requests' commands (an entry is about 1.2 kB)."""
Command = tuple[str, list[str], list[Any]]
"""A script name (``settle``, ``charge``, ``ledger``), its keys and its arguments."""


@dataclass(slots=True)
class SpoolEntry:
    """One request's commands, in the order they must run."""

    write_id: str
    request_id: str
    commands: list[Command]

    def line(self) -> bytes:
        """The JSON line of this entry."""
        cmds = [[n, k, [a.decode() if isinstance(a, bytes) else a for a in args]]
                for n, k, args in self.commands]  # fmt: skip
        return orjson.dumps({"id": self.write_id, "rid": self.request_id, "cmds": cmds}) + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> SpoolEntry:
        """Read a line written by :meth:`line`."""
        d = orjson.loads(line)
        return cls(d["id"], d["rid"], [(n, list(k), list(a)) for n, k, a in d["cmds"]])


@dataclass(slots=True)
class SpoolFile:
    """A spool file taken for replay (locked by this process until :meth:`done`)."""

    path: Path
    fd: int
    entries: list[SpoolEntry] = field(default_factory=list)

    def done(self, replayed: bool) -> None:
        """Delete the file when every entry was replayed; release it either way."""
        try:
            if replayed:
                self.path.unlink(missing_ok=True)
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)


class Spool:
    """Append-only, fsynced, bounded; shared by the processes that use one data directory."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._path: Path | None = None
        self._lock = asyncio.Lock()
        self.spooled = 0
        """Entries written since start."""
        self.replayed = 0
        """Entries replayed into Redis since start."""
        self.size_bytes = 0
        """Bytes in every spool file of the directory (refreshed on append and replay)."""
        self.pending = 0
        """Entries this process spooled and has not replayed yet (other files: unknown)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.refresh()

    @classmethod
    def in_data_dir(cls, data_dir: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Spool:
        """The spool of ``data_dir`` (``<data_dir>/ledger-spool``)."""
        return cls(data_dir / SPOOL_DIR, max_bytes)

    @property
    def full(self) -> bool:
        """Whether the spool holds ``max_bytes`` or more."""
        return self.size_bytes >= self.max_bytes

    @property
    def empty(self) -> bool:
        """Whether no spool file holds anything (as of the last refresh)."""
        return self.size_bytes == 0

    def refresh(self) -> None:
        """Re-read the directory's total size."""
        total = 0
        for path in self._files():
            with contextlib.suppress(OSError):
                total += path.stat().st_size
        self.size_bytes = total

    def _files(self) -> Iterator[Path]:
        return iter(sorted(self.dir.glob("spool-*.jsonl"), key=_created_ns))

    async def append(self, entries: list[SpoolEntry]) -> None:
        """Write ``entries`` and fsync them (in a worker thread) before returning."""
        data = b"".join(e.line() for e in entries)
        async with self._lock:
            await asyncio.to_thread(self._write, data)
        self.spooled += len(entries)
        self.pending += len(entries)
        log.warning("ledger_spooled", entries=len(entries), spool_bytes=self.size_bytes,
                    request_ids=[e.request_id for e in entries][:20])  # fmt: skip

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            # Locked under a name no replayer looks at, then renamed: another process can never
            # take (and delete) a file this one is about to write.
            name = f"spool-{time.time_ns()}-{os.getpid()}.jsonl"
            hidden = self.dir / f".{name}.new"
            fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._path = hidden.rename(self.dir / name)
            self._fd = fd
            dir_fd = os.open(self.dir, os.O_RDONLY)  # the new name survives a crash too
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)
        self.size_bytes += len(data)

    async def take(self) -> list[SpoolFile]:
        """Every spool file no live process writes, oldest first, locked for replay; this
        process's own file is closed first (new entries go to a new one)."""
        async with self._lock:
            await asyncio.to_thread(self._close_own)
            taken = await asyncio.to_thread(self._take_files)
        return taken

    def _close_own(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            self._path = None

    def _take_files(self) -> list[SpoolFile]:
        taken: list[SpoolFile] = []
        for path in self._files():
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another process writes or replays it
                os.close(fd)
                continue
            if not path.exists():  # replayed and deleted by another process meanwhile
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                continue
            f = SpoolFile(path, fd)
            with os.fdopen(os.dup(fd), "rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break  # torn last line of a crash: its request was never confirmed
                    try:
                        f.entries.append(SpoolEntry.parse(line))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        log.error("ledger_spool_bad_line", path=str(path), line=line[:200])
            taken.append(f)
        return taken

    def replayed_file(self, f: SpoolFile, n_entries: int) -> None:
        """Account for a file whose ``n_entries`` entries all reached Redis, and delete it."""
        f.done(replayed=True)
        self.replayed += n_entries
        self.pending = max(0, self.pending - n_entries)
        self.refresh()

    def close(self) -> None:
        """Close this process's file (it stays on disk until replayed)."""
        self._close_own()


def _created_ns(path: Path) -> int:
    """The creation time in a spool file's name (``spool-<ns>-<pid>.jsonl``)."""
    try:
        return int(path.name.split("-")[1])
    except (IndexError, ValueError):
        return 0


class SpoolCollector(Collector):
    """The spool's gauges, read when ``/metrics`` is scraped."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def describe(self) -> Iterator[Metric]:
        """No fixed description."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Size, bound and counts of the ledger spool."""
        s = self.spool
        yield GaugeMetricFamily(
            "router_ledger_spool_bytes",
            "Bytes in the ledger spool (records Redis could not take yet).",
            value=s.size_bytes,
        )
        yield GaugeMetricFamily(
            "router_ledger_spool_max_bytes", "The ledger spool's bound.", value=s.max_bytes
        )
        yield GaugeMetricFamily(
            "router_ledger_spool_pending",
            "Records this process spooled and has not replayed yet.",
            value=s.pending,
        )
        yield GaugeMetricFamily(
            "router_ledger_spooled", "Records spooled since start.", value=s.spooled
        )
        yield GaugeMetricFamily(
            "router_ledger_replayed", "Spooled records replayed into Redis since start.",
            value=s.replayed,
        )  # fmt: skip
