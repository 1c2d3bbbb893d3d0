"""Throughput and latency with a compiled load generator (``wrk``), not the Python one.

The Python generator (``load_phases.py``) tops out near 600 requests/s on two cores, below what
the gateway serves; ``wrk`` (C, Debian's ``wrk`` package; ``make system-deps`` installs it)
does not. One command, from the repository root::

    python loadtests/bench_wrk.py --connections 32 --duration-s 10
    python loadtests/bench_wrk.py --rate 500           # paced: see below
    python loadtests/bench_wrk.py --litellm            # LiteLLM's proxy too, same run
    python loadtests/bench_wrk.py --auto               # `auto` against the named model
    python loadtests/bench_wrk.py --auto --rev main    # ...and main's code, same run

Targets, in the same run against one mock upstream process: ``direct`` (the mock itself) and
``hybrid-router`` (``router serve --workers N`` with ``loadtests/policies/full.yaml``: virtual
key, key + team + global budgets, ledger, exact cache; its own Redis 8). Every request carries
a unique prompt at temperature 0, so the cache looks up and stores but never hits. With
``--litellm``, LiteLLM's proxy (``--workers`` workers, master key, no database; from
``--litellm-venv``, default ``loadtests/litellm/.venv``) is a third target on the same mock.

- closed loop: ``--connections`` connections back to back (``--threads`` wrk threads);
- ``--rate R``: the same connections, each waiting ``connections / R`` seconds between its
  requests (wrk's ``delay()`` hook). wrk has no true open loop (that is wrk2, which Debian does
  not package), so this approximates rate R only while latency is small against the interval,
  and its latencies count from each request's send (no queueing before it).

With ``--auto``, the gateway runs ``loadtests/policies/auto.yaml`` (``full.yaml`` plus the
semantic cache and the trained classifier on the ``auto`` route, both tiers on the mock) and wrk
drives it twice back to back: once naming ``mock-local`` (no classifier, so no semantic cache:
the baseline) and once with ``model: auto`` (classifier, exact + semantic lookup and store on
every request). Each run's prompts are unique, so nothing hits.

Prints one JSON object per target and phase: requests/s, latency p50/p90/p99/p99.9 (ms), errors,
and the CPU time per request of the target's processes (ms; gateway workers and Redis).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "loadtests"))

from gateway_targets import (  # noqa: E402
    HYBRID_POLICY,
    LITELLM_VENV,
    Target,
    hybrid_target,
    litellm_target,
    mock_target,
)

AUTO_POLICY = ROOT / "loadtests" / "policies" / "auto.yaml"

SCRIPT = r"""
local tid = 0
function setup(thread)
  thread:set("id", tid)
  tid = tid + 1
end
function init(args)
  model, auth, delay_ms, tag = args[1], args[2], tonumber(args[3]), args[4] or ""
  counter = 0
  wrk.method = "POST"
  wrk.headers["content-type"] = "application/json"
  if auth ~= "" then wrk.headers["authorization"] = auth end
end
function request()
  counter = counter + 1
  local body = string.format(
    '{"model":"%s","temperature":0,"messages":[{"role":"user","content":"wrk%s %d-%d: say hi"}]}',
    model, tag, id, counter)
  return wrk.format(nil, nil, nil, body)
end
function delay()
  return delay_ms
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"p999_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""
"""Unique prompts, the auth header, an optional per-connection pause, and a JSON summary."""


def run_wrk(
    target: Target,
    script: Path,
    connections: int,
    threads: int,
    duration_s: int,
    delay_ms: int,
    model: str = "mock-local",
) -> dict[str, object]:
    """One wrk run against ``target`` for ``model``; its summary (requests/s, latency in ms,
    errors). The prompts carry the model's name, so no two runs share one."""
    auth = target.headers.get("authorization", "")
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        target.url,
        "--",
        model,
        auth,
        str(delay_ms),
        f" {model}",
    ]
    before = {name: tree.sample().cpu_s for name, tree in target.trees.items()}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu_s = {name: tree.sample().cpu_s - before[name] for name, tree in target.trees.items()}
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    return {
        "target": target.name,
        "model": model,
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms": {q: round(raw[f"{q}_us"] / 1000, 2) for q in ("p50", "p90", "p99", "p999")},
        "errors": raw["errors"],
        "requests": raw["requests"],
        # CPU per request of each process tree (gateway workers, Redis), in ms: less sensitive
        # than requests/s to other load on the machine
        "cpu_ms_per_request": {
            name: round(1000 * cpu / max(1, raw["requests"]), 3) for name, cpu in cpu_s.items()
        },
    }


def main() -> None:
    """Parse arguments, start the targets, run wrk against each, print JSON lines."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--duration-s", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=float, help="paced requests/s in total (default: closed loop)")
    ap.add_argument("--litellm", action="store_true", help="LiteLLM's proxy as a third target")
    ap.add_argument("--litellm-venv", type=Path, default=LITELLM_VENV)
    ap.add_argument(
        "--rev", help="also run the gateway's code at this git revision (e.g. main), same run"
    )
    ap.add_argument(
        "--auto",
        action="store_true",
        help="policies/auto.yaml; the gateway is driven for mock-local, then for `auto`",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: `make system-deps` (as root) or `apt-get install wrk`")
    delay_ms = round(1000 * args.connections / args.rate) if args.rate else 0
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "chat.lua"
        script.write_text(SCRIPT)
        with contextlib.ExitStack() as stack:
            mock, direct = stack.enter_context(mock_target(0.0))
            policy = AUTO_POLICY if args.auto else HYBRID_POLICY
            runs = [(direct, "mock-local")]
            for rev in (args.rev, None) if args.rev else (None,):
                hybrid = stack.enter_context(
                    hybrid_target(mock.url, args.workers, rev, policy=policy)
                )
                if rev is not None:
                    hybrid.name = f"hybrid-router@{rev}"
                runs.append((hybrid, "mock-local"))
                if args.auto:
                    runs.append((hybrid, "auto"))
            if args.litellm:
                litellm = litellm_target(mock.url, args.workers, args.litellm_venv)
                runs.append((stack.enter_context(litellm), "mock-local"))
            for target, model in runs:
                row = run_wrk(
                    target,
                    script,
                    args.connections,
                    args.threads,
                    args.duration_s,
                    delay_ms,
                    model,
                )
                row["mode"] = f"paced {args.rate:g}/s" if args.rate else "closed"
                row["connections"] = args.connections
                row["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
