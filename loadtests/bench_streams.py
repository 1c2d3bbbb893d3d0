"""The concurrent-stream stall test: N streams at once through the gateway, paced upstream.

The mock upstream sends a token every ``1 / tokens_per_s`` seconds (50 ms by default) for
``--tokens`` tokens per reply; the gateway relays each chunk as it comes. A gateway that blocks
its event loop (a synchronous call, a slow lock, a CPU-heavy step per chunk) delays every stream
it serves at that moment, so the longest gap between two consecutive chunks of a stream shows
it. Reported per run: streams that completed with every chunk, streams that *stalled* (a gap
above ``--stall-ms``, 500 ms by default, i.e. 10 token periods), and the p50/p99/max of each
stream's longest inter-chunk gap (the gap before the first content chunk is excluded: that is
connection set-up and time to first token, reported apart)::

    python loadtests/bench_streams.py --streams 1024 --tokens 100 --ramp-s 5
    python loadtests/bench_streams.py --streams 1024 --tokens 100 --ramp-s 5 --direct
    python loadtests/bench_streams.py --streams 64 --url http://127.0.0.1:8080/v1 --model m

Without ``--url`` it starts the mock upstream and ``router serve`` (``--workers``, a minimal
policy: no auth, one ``openai_compat`` model on the mock) itself; ``--direct`` skips the
gateway (the client and the mock alone: the baseline). ``--ramp-s`` spreads the starts, so a
burst of 1,024 connects does not show up as every stream's first gaps. The client is one asyncio
process (uvloop when installed) on the same machine, so on a small machine it competes with the
gateway for the CPU: its numbers bound the gateway's from above.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from pathlib import Path

from router.testing.stream_stalls import gateway_on_paced_mock, run_streams, summarise


def main() -> None:
    """Parse arguments, run the streams once, print the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=256, help="concurrent streams (N)")
    ap.add_argument("--tokens", type=int, default=100, help="tokens per reply")
    ap.add_argument("--tokens-per-s", type=float, default=20.0, help="mock pacing (20 = 50 ms)")
    ap.add_argument("--stall-ms", type=float, default=500.0)
    ap.add_argument("--ramp-s", type=float, default=0.0, help="spread the starts over this")
    ap.add_argument("--workers", type=int, default=2, help="gateway workers")
    ap.add_argument("--url", help="an already running gateway's /v1 URL (skip starting one)")
    ap.add_argument("--model", default="paced")
    ap.add_argument("--direct", action="store_true", help="the mock alone, no gateway (baseline)")
    ap.add_argument("--timeout-s", type=float, default=600.0)
    args = ap.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()

    def run(url: str) -> None:
        started = time.perf_counter()
        results = asyncio.run(
            run_streams(url, args.model, args.streams, args.stall_ms, args.timeout_s, args.ramp_s)
        )
        report = summarise(results, None if args.url else args.tokens, args.stall_ms)
        report["wall_s"] = round(time.perf_counter() - started, 1)
        report["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
        knobs = ("tokens", "tokens_per_s", "workers", "stall_ms", "direct", "ramp_s")
        report["config"] = {k: getattr(args, k) for k in knobs}
        print(json.dumps(report, indent=2))

    if args.url:
        run(args.url)
    else:
        with gateway_on_paced_mock(
            args.tokens, args.tokens_per_s, args.workers, direct=args.direct
        ) as url:
            run(url)


if __name__ == "__main__":
    main()
