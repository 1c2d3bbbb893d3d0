"""Where the gateway's CPU goes while it relays paced streams: cProfile of one worker.

    python loadtests/profile_streams.py --streams 512 [--top 35] [--out /tmp/streams.prof]
    python loadtests/profile_streams.py --streams 512 --no-profile   # the CPU alone

Starts the paced mock upstream (a token every 50 ms, 100 tokens a reply) and serves the gateway
in *this* process (one uvicorn worker, the stall test's policy) under
``cProfile.Profile(time.process_time)``, so only CPU is counted; ``bench_streams.py --url``
drives ``--streams`` streams against it in a child process. Prints the worker's CPU seconds,
the chunks relayed, and the top functions by own CPU time. The profiler itself slows every
Python call, so the totals are several times the unprofiled ones; the ranking is what counts.
``--no-profile`` runs the same without the profiler and prints the worker's CPU seconds and
microseconds per relayed chunk (the requests' own handling included): the figure to compare
between two builds, since it leaves out the mock and the client that share the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.testing.gateway_process import free_port  # noqa: E402
from router.testing.mock_process import MockUpstreamProcess  # noqa: E402
from router.testing.stream_stalls import POLICY  # noqa: E402


def profile(streams: int, tokens: int, enabled: bool = True) -> tuple[cProfile.Profile, float]:
    """Serve, drive ``streams`` streams, return the profile and the worker's CPU seconds."""
    import uvicorn
    import uvloop

    with (
        MockUpstreamProcess(tokens_per_s=20, reply_tokens=tokens) as mock,
        tempfile.TemporaryDirectory(prefix="profile-streams-") as tmp,
    ):
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY)
        # This process is the gateway: its settings come from its environment.
        os.environ.update(
            {
                "MOCK_UPSTREAM_URL": mock.url,
                "ROUTER_POLICY": str(policy),
                "ROUTER_DATA_DIR": tmp,
                "ROUTER_ACCESS_LOG": "0",
                "ROUTER_LOG_LEVEL": "warning",
            }
        )
        port = free_port()
        config = uvicorn.Config(
            "router.app:app_from_env",
            factory=True,
            host="127.0.0.1",
            port=port,
            loop="none",
            http="httptools",
            log_level="warning",
            access_log=False,
        )
        server = uvicorn.Server(config)
        profiler = cProfile.Profile(time.process_time)
        spent: list[float] = []

        async def run() -> None:
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    await task
                await asyncio.sleep(0.05)
            cmd = [sys.executable, str(ROOT / "loadtests" / "bench_streams.py")]
            cmd += ["--streams", str(streams), "--tokens", str(tokens), "--ramp-s", "5"]
            cmd += ["--url", f"http://127.0.0.1:{port}/v1", "--model", "paced"]
            driver = await asyncio.create_subprocess_exec(*cmd)
            started = time.process_time()
            if enabled:
                profiler.enable()
            await driver.wait()
            if enabled:
                profiler.disable()
            spent.append(time.process_time() - started)
            server.should_exit = True
            await task

        uvloop.run(run())
        return profiler, spent[0]


def main() -> None:
    """Parse arguments, profile one run, print the summary and the top functions."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--streams", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--top", type=int, default=35)
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "streams.prof")
    ap.add_argument("--no-profile", action="store_true", help="measure the CPU, profile nothing")
    args = ap.parse_args()
    profiler, cpu_s = profile(args.streams, args.tokens, not args.no_profile)
    chunks = args.streams * args.tokens
    if args.no_profile:
        us = 1e6 * cpu_s / chunks
        print(f"worker CPU {cpu_s:.2f} s for {chunks} chunks: {us:.1f} us a chunk (not profiled)")
        return
    profiler.dump_stats(str(args.out))
    print(f"worker CPU {cpu_s:.1f} s for {chunks} chunks (profiled)")
    buf = io.StringIO()
    pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats("tottime").print_stats(args.top)
    print(buf.getvalue().split("\n", 6)[-1])


if __name__ == "__main__":
    main()
