"""Side-by-side benchmark: the mock upstream directly, hybrid-router, and LiteLLM's proxy.

One command, from the repository root (creates LiteLLM's own venv on first use)::

    .venv/bin/python loadtests/compare_gateways.py

All three targets run at once on this machine against the same mock upstream process:

- ``direct``: the mock itself (the baseline every "added latency" is measured against);
- ``hybrid-router``: ``router serve`` with ``loadtests/policies/full.yaml`` (virtual key auth, key
  + team + global budgets, the ledger, exact cache lookup and store) on its own Redis 8;
- ``litellm-proxy``: ``litellm[proxy]==1.106.2`` from ``loadtests/litellm/.venv``, master key, no
  database, routing ``mock-local`` to the same mock.

Both gateways get ``--workers`` processes (default 2). Phases, each target in turn:

1. closed loop: ``--concurrency`` clients back to back for ``--duration-s`` (max throughput),
   ``--rounds`` times in alternating target order; the median counts;
2. open loop at each of ``--rates`` requests/s for ``--duration-s``, for every target whose
   closed-loop throughput is at least rate / ``--max-load`` (an open loop above capacity only
   measures a growing queue); latency counts from each request's scheduled start.

Prints throughput, latency and added latency (gateway minus direct at the same rate, p50 and
p99), errors, peak RSS and CPU per request of each target's processes, and writes the results
(``--json``), a plot (``--plot``, PNG) and a Markdown section (``--markdown``, between the
``<!-- compare-gateways:begin/end -->`` markers, other text is kept). On a shared machine, run it
when the machine is otherwise idle: the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compare_report import markdown_section, plot, summarize, table  # noqa: E402
from gateway_targets import (  # noqa: E402
    LITELLM_VENV,
    Target,
    hybrid_target,
    litellm_target,
    mock_target,
)
from load_phases import PhaseResult, Prompts, closed_loop, open_loop  # noqa: E402

DOCS = ROOT / "docs"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rates", default="10,25,50,200,500", help="open-loop rates, requests/s")
    p.add_argument("--duration-s", type=float, default=15.0, help="seconds per phase")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop in-flight requests")
    p.add_argument("--rounds", type=int, default=2, help="closed-loop repetitions (median)")
    p.add_argument("--workers", type=int, default=2, help="worker processes of each gateway")
    p.add_argument("--max-load", type=float, default=0.8, help="see phase 2 above (0..1]")
    p.add_argument("--mock-latency-ms", type=float, default=0.0, help="mock upstream delay")
    p.add_argument("--targets", default="direct,hybrid-router,litellm-proxy")
    p.add_argument("--at", metavar="REV", help="run hybrid-router as committed at this git rev")
    p.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    p.add_argument("--json", type=Path, default=DOCS / "img" / "compare-gateways.json")
    p.add_argument("--plot", type=Path, default=DOCS / "img" / "compare-gateways.png")
    p.add_argument("--markdown", type=Path, default=DOCS / "performance-gateways.md")
    return p.parse_args(argv)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _environment(argv: list[str], rev: str | None) -> dict[str, Any]:
    commit = _git("rev-parse", "--short", rev or "HEAD")
    if rev is None and _git("status", "--porcelain", "--", "router"):
        commit += " + uncommitted changes in router/"
    return {
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "command": shlex.join([".venv/bin/python", "loadtests/compare_gateways.py", *argv]),
        "commit": commit,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
    }


async def _run_phases(
    args: argparse.Namespace, targets: list[Target], prompts: Prompts
) -> list[PhaseResult]:
    results: list[PhaseResult] = []
    runs: dict[str, list[float]] = {t.name: [] for t in targets}
    for n in range(args.rounds):  # alternate the order so drifting background load evens out
        for t in targets if n % 2 == 0 else targets[::-1]:
            print(f"closed loop c={args.concurrency} round {n + 1}: {t.name}", flush=True)
            r = await closed_loop(t, prompts, args.concurrency, args.duration_s)
            r.round = n + 1
            runs[t.name].append(r.rps)
            results.append(r)
    capacity = {name: statistics.median(v) for name, v in runs.items()}
    for rate in (float(x) for x in args.rates.split(",") if x.strip()):
        for t in targets:
            if capacity[t.name] * args.max_load < rate:
                print(f"open loop {rate:g}/s: {t.name} skipped (max {capacity[t.name]}/s)")
                continue
            print(f"open loop {rate:g}/s: {t.name}", flush=True)
            results.append(await open_loop(t, prompts, rate, args.duration_s))
    return results


def main(argv: list[str] | None = None) -> int:
    """Start the targets, run the phases, print and write the results."""
    raw = sys.argv[1:] if argv is None else argv
    args = _args(raw)
    wanted = [x.strip() for x in args.targets.split(",")]
    env = _environment(raw, args.at)
    with contextlib.ExitStack() as stack:
        _mock, direct = stack.enter_context(mock_target(args.mock_latency_ms))
        upstream = direct.url.removesuffix("/chat/completions")
        targets = [direct]
        if "hybrid-router" in wanted:
            print("starting hybrid-router", flush=True)
            targets.append(stack.enter_context(hybrid_target(upstream, args.workers, args.at)))
        if "litellm-proxy" in wanted:
            print("starting litellm proxy", flush=True)
            targets.append(
                stack.enter_context(litellm_target(upstream, args.workers, args.litellm_venv))
            )
        targets = [t for t in targets if t.name in wanted or t.name == "direct"]
        results = asyncio.run(_run_phases(args, targets, Prompts()))
        notes = {t.name: t.notes for t in targets}
    env["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    summary = summarize(results)
    print(table(results))
    print(json.dumps(summary, indent=2))
    payload = {
        "environment": env,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": notes,
        "results": [asdict(r) for r in results],
        "summary": summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if plot(results, args.plot):
        print(f"wrote {args.plot}")
    section = markdown_section(payload, args.plot, args.markdown)
    _write_section(args.markdown, section)
    print(f"wrote {args.json} and {args.markdown}")
    return 0


BEGIN = "<!-- compare-gateways:begin -->"
END = "<!-- compare-gateways:end -->"


def _write_section(path: Path, section: str) -> None:
    """Replace the generated section of ``path`` (or create the file with only that section)."""
    block = f"{BEGIN}\n{section.rstrip()}\n{END}\n"
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
