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
gateway for the CPU: its numbers bound the gateway's from above. ``cpu_s`` reports the CPU
seconds the run took in the client and in the processes it started (the mock, the gateway and its
workers), and ``server_cpu_us_per_chunk`` the latter over the chunks relayed: a figure that does
not depend on how busy the machine is, so it says how many chunks a second the gateway can relay
per core. ``gateway_cpu_us_per_chunk`` leaves the mock out (user + system CPU of the gateway's
processes over the chunks relayed; ``cpu_s`` splits both into user and system seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import time
from pathlib import Path

from router.testing.stream_stalls import gateway_on_paced_mock, run_streams, summarise


def _cpu_s(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` from ``/proc/PID/stat`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _is_mock(pid: int) -> bool:
    """Whether ``pid`` is the mock upstream (its command line names the module)."""
    try:
        return b"router.testing.mock_upstream" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def descendants_cpu_s() -> dict[int, tuple[float, float]]:
    """User and system CPU seconds of every process below this one, by pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {os.getpid()}
    while True:
        below = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        if not below:
            break
        tree |= below
    tree.discard(os.getpid())
    return {pid: _cpu_s(pid) for pid in tree}


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
        servers_before = descendants_cpu_s()
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        results = asyncio.run(
            run_streams(url, args.model, args.streams, args.stall_ms, args.timeout_s, args.ramp_s)
        )
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        servers_after = descendants_cpu_s()
        report = summarise(results, None if args.url else args.tokens, args.stall_ms)
        report["wall_s"] = round(time.perf_counter() - started, 1)
        # The gateway's own share (every process below this one but the mock): what the
        # per-chunk cost of the relay is read from.
        spent = {"mock": [0.0, 0.0], "gateway": [0.0, 0.0]}
        for pid, (user, system) in servers_after.items():
            user0, system0 = servers_before.get(pid, (0.0, 0.0))
            part = spent["mock" if _is_mock(pid) else "gateway"]
            part[0] += user - user0
            part[1] += system - system0
        servers_s = sum(sum(part) for part in spent.values())
        client_s = (client_after.ru_utime + client_after.ru_stime) - (
            client_before.ru_utime + client_before.ru_stime
        )
        report["cpu_s"] = {
            "servers": round(servers_s, 1),
            "client": round(client_s, 1),
            **{f"{k}_user_sys": [round(v, 2) for v in part] for k, part in spent.items()},
        }
        chunks = args.streams * args.tokens
        report["server_cpu_us_per_chunk"] = round(1e6 * servers_s / max(1, chunks), 1)
        gateway_s = sum(spent["gateway"])
        report["gateway_cpu_us_per_chunk"] = round(1e6 * gateway_s / max(1, chunks), 1)
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
