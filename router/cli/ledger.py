"""``router ledger export --since ... --until ... --format jsonl|csv|parquet [--output FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import IO

from router.ledger.export import FORMATS, export, parse_time, sink_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``ledger`` subcommand group."""
    p = sub.add_parser("ledger", help="the spend ledger: export records")
    lsub = p.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    e = lsub.add_parser("export", help="export ledger records between two times")
    e.add_argument("--since", help="start (inclusive): 2026-11-01, an ISO time, or 24h / 7d ago")
    e.add_argument("--until", help="end (exclusive), same forms; default: no end")
    e.add_argument("--format", choices=FORMATS, default="jsonl")
    e.add_argument("--output", "-o", type=Path, help="file (default stdout; required: parquet)")
    e.set_defaults(func=export_cmd)


def export_cmd(args: argparse.Namespace) -> int:
    """Export records (streamed page by page); print the count to stderr."""
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        print(f"error: bad time: {exc}", file=sys.stderr)
        return 2
    if args.format == "parquet" and args.output is None:
        print("error: --format parquet needs --output FILE", file=sys.stderr)
        return 2
    n = asyncio.run(_export(since, until, args.format, args.output))
    print(f"exported {n} records", file=sys.stderr)
    return 0


async def _export(since: float | None, until: float | None, fmt: str, path: Path | None) -> int:
    from router.budget.reserve import Budgets
    from router.cli.redis_access import open_redis
    from router.ledger.writer import Ledger

    handle = await open_redis()
    try:
        ledger = Ledger(handle.client, Budgets(handle.client))
        with contextlib.ExitStack() as stack:
            out: IO[bytes]
            if path is not None and fmt != "parquet":
                out = stack.enter_context(path.open("wb"))
            else:
                out = sys.stdout.buffer
            sink = sink_for(fmt, out, path if fmt == "parquet" else None)
            return await export(ledger.read(since, until), sink)
    finally:
        await handle.aclose()
