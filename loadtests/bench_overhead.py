"""Paired overhead benchmark: the same load straight to the mock upstream and through the gateway.

Both targets are measured in the same run on the same machine, so the numbers are ratios and
differences against a baseline, not absolute claims. The classifier is out of the path (an
explicit model), as in issue #3's goals.

    .venv/bin/python loadtests/bench_overhead.py [--rate 200] [--duration-s 10]
        [--concurrency 32] [--workers 1] [--json OUT.json]

Open loop at ``--rate`` requests/s gives the added latency (gateway p50/p99 minus direct
p50/p99; latency is measured from each request's scheduled start, so queueing counts). A closed
loop with ``--concurrency`` in-flight requests gives the sustained throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.testing.gateway_process import GatewayProcess  # noqa: E402
from router.testing.mock_process import MockUpstreamProcess  # noqa: E402

BODY = json.dumps(
    {"model": "mock-local", "messages": [{"role": "user", "content": "Say hello in one word."}]}
).encode()


@dataclass
class Result:
    """One phase against one target."""

    target: str
    mode: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _result(target: str, mode: str, lat: list[float], errors: int, secs: float) -> Result:
    ms = [x * 1000 for x in lat]
    return Result(
        target,
        mode,
        len(lat) + errors,
        errors,
        round(secs, 2),
        round(len(lat) / secs, 1),
        round(_pct(ms, 0.5), 3),
        round(_pct(ms, 0.9), 3),
        round(_pct(ms, 0.99), 3),
    )


async def _one(session: aiohttp.ClientSession, url: str) -> bool:
    async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
        await r.read()
        return r.status == 200


async def open_loop(url: str, rate: float, duration_s: float, target: str) -> Result:
    """Send ``rate`` requests/s for ``duration_s``; latency from each scheduled start."""
    conn = aiohttp.TCPConnector(limit=0)
    lat: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(20):  # warm the pools
            await _one(session, url)

        async def fire(at: float) -> None:
            nonlocal errors
            try:
                ok = await _one(session, url)
            except aiohttp.ClientError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - at)
            else:
                errors += 1

        n = int(rate * duration_s)
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            at = t0 + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(at)))
        await asyncio.gather(*tasks)
        secs = time.perf_counter() - t0
    return _result(target, f"open {rate:g}/s", lat, errors, secs)


async def closed_loop(url: str, concurrency: int, duration_s: float, target: str) -> Result:
    """``concurrency`` workers each send back-to-back requests for ``duration_s``."""
    conn = aiohttp.TCPConnector(limit=0)
    lat: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(20):
            await _one(session, url)
        stop = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    ok = await _one(session, url)
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        secs = time.perf_counter() - t0
    return _result(target, f"closed c={concurrency}", lat, errors, secs)


async def run(args: argparse.Namespace, direct: str, gateway: str) -> list[Result]:
    """Both phases against both targets, direct first each time."""
    out: list[Result] = []
    for target, url in (("direct", direct), ("gateway", gateway)):
        out.append(await open_loop(url, args.rate, args.duration_s, target))
    for target, url in (("direct", direct), ("gateway", gateway)):
        out.append(await closed_loop(url, args.concurrency, args.duration_s, target))
    return out


def main() -> int:
    """Run the benchmark and print a table (and JSON when asked)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=200.0, help="open-loop requests/s")
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop in-flight requests")
    p.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    p.add_argument("--access-log", action="store_true", help="keep the per-request log line")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    policy = ROOT / "policies" / "examples" / "mock.yaml"
    with MockUpstreamProcess() as mock:
        env = {"MOCK_UPSTREAM_URL": mock.url, "ROUTER_ACCESS_LOG": "1" if args.access_log else "0"}
        with GatewayProcess(policy, env=env, workers=args.workers) as gw:
            results = asyncio.run(
                run(args, mock.url + "/chat/completions", gw.url + "/chat/completions")
            )
    print(
        f"{'target':8} {'mode':14} {'req':>7} {'err':>4} {'rps':>8} {'p50 ms':>8} "
        f"{'p90 ms':>8} {'p99 ms':>8}"
    )
    for r in results:
        print(
            f"{r.target:8} {r.mode:14} {r.requests:7d} {r.errors:4d} {r.rps:8.1f} "
            f"{r.p50_ms:8.3f} {r.p90_ms:8.3f} {r.p99_ms:8.3f}"
        )
    od, og, cd, cg = results
    summary = {
        "added_p50_ms_at_rate": round(og.p50_ms - od.p50_ms, 3),
        "added_p99_ms_at_rate": round(og.p99_ms - od.p99_ms, 3),
        "gateway_rps_closed": cg.rps,
        "direct_rps_closed": cd.rps,
        "gateway_workers": args.workers,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(summary))
    if args.json:
        args.json.write_text(
            json.dumps({"results": [asdict(r) for r in results], "summary": summary}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
