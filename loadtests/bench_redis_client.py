"""The client's CPU per Redis command: redis-py's asyncio pool against the gateway's RedisMux.

    .venv/bin/python loadtests/bench_redis_client.py [--commands 20000] [--concurrency 32]
        [--rounds 3]

Starts an embedded Redis 8 on a unix socket, then, in one process on uvloop, runs
``--commands`` ``GET``s of a 100-byte value from ``--concurrency`` tasks through each client in
turn (alternating, ``--rounds`` times) and prints the process's CPU time per command in µs
(``time.process_time``: the client's own cost; the server runs in another process). The
clients are configured as the gateway configures them (``router.redis.client.connect_redis``,
``RedisMux.for_client``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop

from router.redis.client import connect_redis
from router.redis.embedded import EmbeddedRedis
from router.redis.mux import RedisMux


async def cpu_us_per_command(
    get: Callable[[str], Awaitable[Any]], commands: int, concurrency: int
) -> float:
    """CPU µs of this process per ``get`` with ``concurrency`` tasks in flight."""

    async def worker(n: int) -> None:
        for _ in range(n):
            await get("k")

    per_task = commands // concurrency
    start = time.process_time()
    await asyncio.gather(*(worker(per_task) for _ in range(concurrency)))
    return (time.process_time() - start) / (per_task * concurrency) * 1e6


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "r")
        await server.astart()
        handle = await connect_redis(server.url)
        mux = RedisMux.for_client(handle.client)
        assert mux is not None
        try:
            await handle.client.set("k", "v" * 100)
            for rnd in range(args.rounds):
                for name, get in (("redis-py", handle.client.get), ("RedisMux", mux.get)):
                    us = await cpu_us_per_command(get, args.commands, args.concurrency)
                    row = {"round": rnd, "client": name, "cpu_us_per_command": round(us, 1)}
                    print(json.dumps(row), flush=True)
        finally:
            await mux.aclose()
            await handle.aclose()
            await server.astop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    uvloop.run(main(parser.parse_args()))
