"""``router ledger export --since ... --until ... --format jsonl|csv|parquet [--output FILE]``
and ``router ledger reconcile`` (correct reclaimed holds with the provider's actual usage)."""

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
    r = lsub.add_parser(
        "reconcile",
        help="correct holds of dead replicas (charged at their reserved amount) to what the "
        "provider billed",
    )
    r.add_argument("request_id", nargs="?", help="the request (or hold) id of a reclaimed row")
    r.add_argument("--cost-usd", type=float, help="what the provider billed for it")
    r.add_argument("--prompt-tokens", type=int, default=0)
    r.add_argument("--completion-tokens", type=int, default=0)
    r.add_argument("--note", default="", help="recorded in the adjustment row's reason")
    r.add_argument(
        "--usage",
        type=Path,
        help='JSON lines of provider usage: {"request_id", "cost_usd", "prompt_tokens", '
        '"completion_tokens"}; every reclaimed request listed is corrected',
    )
    r.add_argument("--list", action="store_true", help="list reclaimed holds not reconciled")
    r.set_defaults(func=reconcile_cmd)


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


def reconcile_cmd(args: argparse.Namespace) -> int:
    """List or correct reclaimed holds; prints one JSON line per hold."""
    if not args.list and args.usage is None and (args.request_id is None or args.cost_usd is None):
        print("error: give REQUEST_ID --cost-usd X, --usage FILE, or --list", file=sys.stderr)
        return 2
    return asyncio.run(_reconcile(args))


async def _reconcile(args: argparse.Namespace) -> int:
    import orjson

    from router.budget.reserve import Budgets
    from router.cli.redis_access import open_redis
    from router.ledger.reconcile import parse_usage_line, pending, reconcile
    from router.ledger.writer import Ledger

    handle = await open_redis()
    try:
        budgets = Budgets(handle.client)
        ledger = Ledger(handle.client, budgets)
        if args.list:
            for held in await pending(budgets):
                row = {"request_id": held.request_id, "hold_id": held.hold_id,
                       "key_id": held.key_id, "team": held.team, "model": held.model,
                       "charged_usd": held.charged_usd}  # fmt: skip
                print(orjson.dumps(row).decode())
            return 0
        todo: list[tuple[str, float, int, int]] = []
        if args.usage is not None:
            waiting = {h.request_id for h in await pending(budgets)}
            for line in args.usage.read_bytes().splitlines():
                if line.strip():
                    item = parse_usage_line(line)
                    if item[0] in waiting:
                        todo.append(item)
        else:
            todo.append((args.request_id, args.cost_usd, args.prompt_tokens,
                         args.completion_tokens))  # fmt: skip
        failed = 0
        for rid, cost, p_tok, c_tok in todo:
            try:
                done = await reconcile(ledger, rid, cost, p_tok, c_tok, args.note)
            except LookupError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(orjson.dumps(done).decode())
        print(f"reconciled {len(todo) - failed} holds", file=sys.stderr)
        return 1 if failed else 0
    finally:
        await handle.aclose()
