"""``router report [--since ... --until ...] [--by team,key,model,route,day]
--format table|csv|json|html [--output FILE]``: cost reports from the ledger."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from router.ledger.export import parse_time
from router.policy.schema import Policy
from router.reports.aggregate import GROUP_FIELDS, Report, parse_by

FORMATS = ("table", "csv", "json", "html")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand."""
    p = sub.add_parser(
        "report",
        help="cost report: spend, savings, tiers, cache and latency from the ledger",
        description="Aggregate the ledger between two times (default: the last 24 hours).",
    )
    p.add_argument(
        "--since", default="24h", help="start (inclusive): 2026-11-01, an ISO time, 24h or 7d ago"
    )
    p.add_argument("--until", help="end (exclusive), same forms; default: now")
    p.add_argument("--by", default="", help=f"group by a comma list of {','.join(GROUP_FIELDS)}")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--output", "-o", type=Path, help="write to FILE instead of stdout")
    p.add_argument("--policy", type=Path, help="policy with team budgets (default: $ROUTER_POLICY)")
    p.set_defaults(func=report_cmd)


def render(report: Report, fmt: str) -> str:
    """``report`` in ``fmt`` (one of :data:`FORMATS`)."""
    from router.reports.render_html import render_html
    from router.reports.render_text import render_csv, render_json, render_table

    if fmt == "html":
        return render_html(report)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "json":
        return render_json(report)
    return render_table(report, color=False)


def report_cmd(args: argparse.Namespace) -> int:
    """Build the report and write it; errors go to stderr with exit status 2."""
    try:
        since = _time(args.since)
        until = _time(args.until)
        by = parse_by(args.by)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if since is not None and until is not None and until <= since:
        print("error: --until must be after --since", file=sys.stderr)
        return 2
    report = asyncio.run(_build(since, until, by, _policy(args.policy)))
    text = render(report, args.format)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        n = report.totals["requests"]
        print(f"wrote {args.output} ({n} requests)", file=sys.stderr)
    elif args.format == "table" and sys.stdout.isatty():
        from rich.console import Console

        from router.reports.render_text import budget_table, metrics_table

        console = Console()
        console.print(metrics_table(report))
        if report.budgets:
            console.print(budget_table(report))
        if report.quality and report.quality.get("labels"):
            from router.reports.render_quality import quality_table

            console.print(quality_table(report.quality))
    else:
        sys.stdout.write(text)
    return 0


def _time(text: str | None) -> float | None:
    """Unix seconds of a ``--since``/``--until`` value; ``24h`` is read as ``-24h`` (ago).

    (``--since -24h`` looks like an option to argparse: write ``--since=-24h`` or ``24h``.)
    """
    if not text:
        return None
    t = text.strip()
    if t[-1:] in ("m", "h", "d") and t[:-1].isdigit():
        t = "-" + t
    return parse_time(t)


def _policy(path: Path | None) -> Policy | None:
    """The policy (team budgets, model tiers); None (with a note on stderr) if it cannot load."""
    from router.policy.load import PolicyError, load_policy
    from router.settings import Settings

    target = path or Settings.from_env().policy_path
    try:
        return load_policy(target).policy
    except (PolicyError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"note: no team budgets or model tiers ({target}: {first})", file=sys.stderr)
        return None


async def _build(
    since: float | None,
    until: float | None,
    by: tuple[str, ...],
    policy: Policy | None,
) -> Report:
    from router.cli.redis_access import open_redis
    from router.reports.source import build_report, policy_tiers

    handle = await open_redis()
    try:
        budgets = policy.budgets if policy is not None else None
        tiers = policy_tiers(policy) if policy is not None else None
        end = until or time.time()
        return await build_report(handle.client, since, end, by, budgets, tiers)
    finally:
        await handle.aclose()
