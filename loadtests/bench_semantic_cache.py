"""Benchmark: semantic lookup latency with 100,000 entries in one scope, and exact-hit cost.

Starts an embedded Redis 8 (or uses ``--redis-url``), fills one scope's vector set with
``--entries`` random unit vectors (384-d, the encoder's size) carrying realistic cache entries
as attributes, then times, sequentially from one asyncio client over the unix socket:

* ``VSIM`` alone (top-1 with scores and attributes);
* :meth:`ResponseCache.lookup_semantic` end to end (VSIM, entry parse, TTL check, guards), for
  hits (query near a stored vector) and misses (random query);
* :meth:`ResponseCache.lookup_exact` + :func:`replay_body` for exact hits (what a hit adds to the
  warm in-process path);
* :meth:`ResponseCache.store` with the eviction script.

Run: ``python loadtests/bench_semantic_cache.py [--entries 100000] [--queries 2000]``.
Prints a Markdown table (latencies in milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import redis.asyncio as aredis

from router.cache.entry import CacheEntry
from router.cache.replay import replay_body
from router.cache.service import ResponseCache
from router.policy.sections.cache import CacheSettings
from router.protocol.chat_request import ChatRequest
from router.protocol.chat_response import Completion, Usage
from router.redis import keys
from router.redis.embedded import EmbeddedRedis

DIM = 384
TENANT = "bench"


def unit_rows(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """``n`` random unit vectors."""
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def body(i: int) -> dict[str, Any]:
    """A realistic ~600-byte completion body."""
    text = f"Answer number {i}. " + "This is a cached answer with a few sentences. " * 10
    return {
        "id": f"chatcmpl-{i}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 120, "total_tokens": 140},
    }


def request(text: str) -> ChatRequest:
    """A cacheable request with ``text`` as its user message."""
    return ChatRequest.model_validate(
        {"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": text}]}
    )


async def fill(
    client: aredis.Redis, scope: str, vectors: npt.NDArray[np.float32], now: float, workers: int
) -> float:
    """Insert every vector into the scope; returns seconds.

    ``workers`` connections pipeline ``VADD ... CAS`` concurrently, so the server runs the
    neighbour search of the inserts in its worker threads.
    """
    vs, vz = keys.vector_set_key(TENANT, scope), keys.age_index_key(TENANT, scope)
    batch = 200

    async def worker(lo: int, hi: int) -> None:
        for start in range(lo, hi, batch):
            pipe = client.pipeline(transaction=False)
            for i in range(start, min(start + batch, hi)):
                entry = CacheEntry(body(i), "hosted", Usage(20, 120), now, f"question number {i}")
                blob = vectors[i].tobytes()
                pipe.execute_command(
                    "VADD", vs, "FP32", blob, f"e{i}", "CAS", "SETATTR", entry.dumps()
                )
                pipe.zadd(vz, {f"e{i}": now})
            await pipe.execute()

    t0 = time.perf_counter()
    n = len(vectors)
    bounds = np.linspace(0, n, workers + 1).astype(int)
    await asyncio.gather(*(worker(int(a), int(b)) for a, b in itertools.pairwise(bounds)))
    return time.perf_counter() - t0


async def timed(n: int, fn: Callable[[int], Awaitable[object]]) -> npt.NDArray[np.float64]:
    """Latencies (ms) of ``n`` sequential calls of ``fn(i)`` after 50 warm-up calls."""
    for i in range(50):
        await fn(i)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        await fn(i)
        out[i] = (time.perf_counter() - t0) * 1000
    return out


def row(name: str, ms: npt.NDArray[np.float64]) -> str:
    """One Markdown table row: p50, p95, p99, max."""
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return f"| {name} | {len(ms)} | {p50:.3f} | {p95:.3f} | {p99:.3f} | {ms.max():.3f} |"


async def run(args: argparse.Namespace) -> None:
    """Fill, measure, print."""
    server: EmbeddedRedis | None = None
    url = args.redis_url
    if url is None:
        server = EmbeddedRedis(tempfile.mkdtemp(prefix="bench-cache-"), appendfsync="no")
        url = await server.astart()
    client = aredis.Redis.from_url(url, decode_responses=True)
    try:
        await client.flushall()
        rng = np.random.default_rng(0)
        settings = CacheSettings(max_entries_per_scope=args.entries + 10_000, ttl_s=86_400)
        cache = ResponseCache(client)
        probe = cache.prepare(request("question number 0"), TENANT, settings)
        scope = probe.canonical.scope
        vectors = unit_rows(rng, args.entries)
        seconds = await fill(client, scope, vectors, time.time(), args.workers)
        card = await client.execute_command("VCARD", keys.vector_set_key(TENANT, scope))  # type: ignore[no-untyped-call]
        print(f"filled {card} entries in {seconds:.1f} s ({card / seconds:.0f}/s)\n", flush=True)

        q = args.queries
        idx = rng.integers(0, args.entries, q + 50)
        noise = unit_rows(rng, q + 50)
        near = vectors[idx] + 0.25 * noise  # cosine ~0.97 with the stored vector
        near /= np.linalg.norm(near, axis=1, keepdims=True)
        far = unit_rows(rng, q + 50)
        reqs = [cache.prepare(request(f"question number {i}"), TENANT, settings) for i in idx]
        miss_req = cache.prepare(request("something else entirely"), TENANT, settings)
        vs = keys.vector_set_key(TENANT, scope)

        async def vsim(i: int) -> object:
            blob = near[i].astype(np.float32).tobytes()
            cmd = client.execute_command
            return await cmd("VSIM", vs, "FP32", blob, "WITHSCORES", "WITHATTRIBS", "COUNT", 1)  # type: ignore[no-untyped-call]

        found = [0]

        async def sem_hit(i: int) -> object:
            hit = await cache.lookup_semantic(reqs[i], near[i])
            found[0] += hit is not None
            return hit

        async def sem_miss(i: int) -> object:
            return await cache.lookup_semantic(miss_req, far[i])

        exact_reqs = [
            cache.prepare(request(f"exact question {i}"), TENANT, settings) for i in range(200)
        ]
        for i, r in enumerate(exact_reqs):
            await cache.exact.put(
                TENANT, r.canonical.digest, CacheEntry(body(i), "hosted", None, time.time()), 3600
            )

        async def exact_hit(i: int) -> object:
            hit = await cache.lookup_exact(exact_reqs[i % 200])
            assert hit is not None
            return replay_body(hit)

        async def store(i: int) -> object:
            creq = cache.prepare(request(f"new question {i}"), TENANT, settings)
            comp = Completion(body(i), Usage(20, 120), "hosted")
            return await cache.store(creq, comp, far[i])

        print("| operation | n | p50 ms | p95 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|---|")
        print(row(f"VSIM top-1 ({card:,} entries)", await timed(q, vsim)))
        print(row("lookup_semantic, near query", await timed(q, sem_hit)))
        print(row("lookup_semantic, miss", await timed(q, sem_miss)))
        print(row("lookup_exact + replay_body, hit", await timed(q, exact_hit)))
        print(row("store (exact + VADD + eviction script)", await timed(min(q, 1000), store)))
        if args.sweep:
            print("\n| VSIM variant | p50 ms | p99 ms | recall@1 |")
            print("|---|---|---|---|")
            for ef in (None, 10, 25, 50, 100, 200):
                for nothread in (False, True):
                    extra: list[object] = []
                    if ef is not None:
                        extra += ["EF", ef]
                    if nothread:
                        extra.append("NOTHREAD")
                    right = [0]

                    async def variant(
                        i: int, extra: list[object] = extra, right: list[int] = right
                    ) -> object:
                        blob = near[i].astype(np.float32).tobytes()
                        cmd = client.execute_command
                        reply = await cmd("VSIM", vs, "FP32", blob, "COUNT", 1, *extra)  # type: ignore[no-untyped-call]
                        right[0] += bool(reply) and reply[0] == f"e{idx[i]}"
                        return reply

                    ms = await timed(q, variant)
                    p50, p99 = np.percentile(ms, [50, 99])
                    name = f"EF {ef or 'default'}{' NOTHREAD' if nothread else ''}"
                    print(f"| {name} | {p50:.3f} | {p99:.3f} | {right[0] / (q + 50):.1%} |")
        print(f"\nnear queries served as hits: {found[0] / (q + 50):.1%} (HNSW recall at top-1)")
        print(f"errors: {cache.stats.errors}, guard rejects: {cache.stats.guard_rejects}")
        mem = await client.info("memory")
        print(f"used_memory: {int(mem['used_memory']) / 2**20:.0f} MiB")
    finally:
        await client.aclose()
        if server is not None:
            await server.astop()


def main() -> None:
    """Parse arguments and run."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--entries", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--workers", type=int, default=8, help="concurrent connections for the fill")
    p.add_argument("--sweep", action="store_true", help="also time VSIM across EF and NOTHREAD")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of an embedded one")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
