"""Where hybrid-router's CPU goes under load: cProfile of one gateway worker (CPU time).

    .venv/bin/python loadtests/profile_gateway.py [--duration-s 20] [--concurrency 32]
        [--top 30] [--out /tmp/gateway.prof] [--auto]

Starts the mock upstream, a Redis 8 and a virtual key exactly as ``compare_gateways.py`` does
(policy ``loadtests/policies/full.yaml``: keys, budgets, ledger, cache), then serves the gateway
in *this* process with one uvicorn worker under ``cProfile.Profile(time.process_time)``, so that
time spent waiting (network, Redis) is not counted, only CPU. A child process drives a closed
loop against it for ``--duration-s`` seconds; then the top functions by own CPU time and by
cumulative CPU time are printed (seconds), and the raw stats are saved for ``snakeviz`` or
``pstats``. ``--auto`` profiles ``model: auto`` under ``loadtests/policies/auto.yaml``
instead (the trained classifier and the semantic cache on every request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway_targets import (  # noqa: E402
    HYBRID_POLICY,
    create_key,
    mock_target,
    policy_for_run,
)
from load_phases import Prompts, closed_loop  # noqa: E402

from router.redis.embedded import EmbeddedRedis  # noqa: E402
from router.testing.gateway_process import free_port  # noqa: E402

AUTO_POLICY = ROOT / "loadtests" / "policies" / "auto.yaml"


def _drive(url: str, key: str, concurrency: int, duration_s: float, model: str) -> int:
    """Child mode: wait for the gateway, run the closed loop, print one summary line."""
    import urllib.request

    from gateway_targets import Target

    base = url.rsplit("/v1/", 1)[0]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(base + "/readyz", timeout=1) as r:
            if r.status == 200:
                break
        time.sleep(0.2)
    target = Target("hybrid-router", url, {"authorization": f"Bearer {key}"})
    result = asyncio.run(closed_loop(target, Prompts(model), concurrency, duration_s))
    print(
        f"load: {result.ok} ok, {result.errors} errors, {result.rps} rps, "
        f"p50 {result.p50_ms} ms, p99 {result.p99_ms} ms",
        flush=True,
    )
    return 0


def _serve_profiled(port: int, driver: subprocess.Popen[bytes]) -> cProfile.Profile:
    """Serve until the driver exits; profile only from the end of startup to that exit."""
    import uvicorn

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

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task  # startup failed: raise its error
            await asyncio.sleep(0.05)
        profiler.enable()  # this thread runs the event loop: every request's CPU is seen
        await asyncio.to_thread(driver.wait)
        profiler.disable()
        server.should_exit = True
        await task

    import uvloop

    uvloop.run(run())
    return profiler


def _report(profiler: cProfile.Profile, top: int, out: Path) -> None:
    profiler.dump_stats(str(out))
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(top)
        print(f"==== top {top} by {key} (CPU seconds) ====")
        print(buf.getvalue().split("\n", 6)[-1])


def main() -> int:
    """Parse arguments; child mode drives load, parent mode serves under the profiler."""
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--duration-s", type=float, default=20.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "gateway.prof")
    p.add_argument("--auto", action="store_true", help="model auto under policies/auto.yaml")
    p.add_argument("--drive", nargs=2, metavar=("URL", "KEY"), help=argparse.SUPPRESS)
    args = p.parse_args()
    model = "auto" if args.auto else "mock-local"
    if args.drive:
        return _drive(args.drive[0], args.drive[1], args.concurrency, args.duration_s, model)
    with (
        tempfile.TemporaryDirectory(prefix="hr-prof-") as tmp,
        mock_target(0.0) as (_mock, direct),
        EmbeddedRedis(Path(tmp), transport="unix") as redis_server,
    ):
        policy, cache_on = policy_for_run(
            Path(tmp), None, AUTO_POLICY if args.auto else HYBRID_POLICY
        )
        key = create_key(redis_server.url, Path(tmp), None)
        os.environ.update(
            {
                "ROUTER_POLICY": str(policy),
                "MOCK_UPSTREAM_URL": direct.url.removesuffix("/chat/completions"),
                "REDIS_URL": redis_server.url,
                "ROUTER_ACCESS_LOG": "0",
                "ROUTER_LOG_LEVEL": "warning",
            }
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        cmd = [sys.executable, __file__, "--drive", url, key]
        cmd += ["--concurrency", str(args.concurrency), "--duration-s", str(args.duration_s)]
        cmd += ["--auto"] if args.auto else []
        driver = subprocess.Popen(cmd)
        print(f"profiling one worker (cache lookup {'on' if cache_on else 'off'})", flush=True)
        profiler = _serve_profiled(port, driver)
    _report(profiler, args.top, args.out)
    print(f"raw stats: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
