"""The concurrent-stream stall test's client: N paced streams through the gateway at once.

The mock upstream sends a token every ``1 / tokens_per_s`` seconds; the gateway relays each chunk
as it comes. A gateway that blocks its event loop (a synchronous call, a slow lock, a CPU-heavy
step per chunk) delays every stream it serves at that moment, so the longest gap between two
consecutive content chunks of a stream shows it. The gap before the first content chunk is left
out (connection set-up and time to first token, reported apart). ``loadtests/bench_streams.py``
is the command line; ``tests/integration/test_stream_stalls.py`` runs a small version.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

POLICY = """version: 1
auth: none
defaults:
  retry: {attempts: 1, backoff_s: 0.01, max_backoff_s: 0.05}
  timeouts: {connect_s: 10, total_s: 600}
models:
  - name: paced
    backend: openai_compat
    tier: hosted
    endpoint: ${MOCK_UPSTREAM_URL}
    price: {input_usd_per_mtok: 0.0, output_usd_per_mtok: 0.0}
"""
"""One model on the mock upstream; a total timeout far above a stream's length."""


@dataclass
class StreamResult:
    """What one stream saw: content chunks, when the first came, the longest later gap."""

    chunks: int = 0
    done: bool = False
    first_chunk_s: float | None = None
    max_gap_s: float = 0.0
    error: str | None = None
    gaps_over: list[float] = field(default_factory=list)


async def one_stream(
    session: aiohttp.ClientSession,
    url: str,
    model: str,
    index: int,
    stall_s: float,
    start_after_s: float = 0.0,
) -> StreamResult:
    """Send one streaming request (after ``start_after_s``) and time its content chunks."""
    res = StreamResult()
    await asyncio.sleep(start_after_s)
    body = {
        "model": model,
        "stream": True,
        "temperature": 0,
        "messages": [{"role": "user", "content": f"stream {index}: tell me a story"}],
    }
    started = time.perf_counter()
    last: float | None = None
    try:
        async with session.post(url + "/chat/completions", json=body) as resp:
            if resp.status != 200:
                res.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                return res
            async for raw in resp.content:
                line = raw.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    res.done = True
                    break
                now = time.perf_counter()
                choices = orjson.loads(data).get("choices") or [{}]
                if not (choices[0].get("delta") or {}).get("content"):
                    continue
                res.chunks += 1
                if last is None:
                    res.first_chunk_s = now - started
                else:
                    gap = now - last
                    res.max_gap_s = max(res.max_gap_s, gap)
                    if gap > stall_s:
                        res.gaps_over.append(gap)
                last = now
    except (aiohttp.ClientError, TimeoutError) as exc:
        res.error = f"{type(exc).__name__}: {exc}"
    return res


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_streams(
    url: str, model: str, n: int, stall_ms: float, timeout_s: float, ramp_s: float = 0.0
) -> list[StreamResult]:
    """``n`` streams at once (one connection each), their starts spread evenly over ``ramp_s``
    (a burst of ``n`` connects otherwise shows up as everyone's first gaps); every result."""
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        tasks = [
            one_stream(session, url, model, i, stall_ms / 1000, ramp_s * i / max(n, 1))
            for i in range(n)
        ]
        return list(await asyncio.gather(*tasks))


def summarise(
    results: list[StreamResult], expected_chunks: int | None, stall_ms: float
) -> dict[str, Any]:
    """The run's report: completion, stalls, gap and first-chunk quantiles (ms)."""
    ok = [
        r
        for r in results
        if r.done and r.error is None and (expected_chunks is None or r.chunks == expected_chunks)
    ]
    gaps = [r.max_gap_s * 1000 for r in results if r.chunks > 1]
    firsts = [r.first_chunk_s * 1000 for r in results if r.first_chunk_s is not None]
    errors = sorted({r.error for r in results if r.error})
    return {
        "streams": len(results),
        "completed": len(ok),
        "stalled": sum(1 for r in results if r.max_gap_s * 1000 > stall_ms),
        "stall_ms": stall_ms,
        "max_gap_ms": {
            "p50": round(quantile(gaps, 0.5), 1),
            "p99": round(quantile(gaps, 0.99), 1),
            "max": round(max(gaps, default=0.0), 1),
        },
        "first_chunk_ms": {
            "p50": round(quantile(firsts, 0.5), 1),
            "p99": round(quantile(firsts, 0.99), 1),
        },
        "chunks_per_stream": sorted({r.chunks for r in results}),
        "errors": errors[:5],
    }


@contextlib.contextmanager
def gateway_on_paced_mock(
    tokens: int,
    tokens_per_s: float,
    workers: int,
    log_path: Path | None = None,
    *,
    direct: bool = False,
) -> Iterator[str]:
    """The mock upstream (paced) and ``router serve`` in front of it; yields the gateway's URL
    (the mock's own with ``direct``: the baseline of the client and the mock alone)."""
    with contextlib.ExitStack() as stack:
        mock = stack.enter_context(
            MockUpstreamProcess(tokens_per_s=tokens_per_s, reply_tokens=tokens)
        )
        if direct:
            yield mock.url
            return
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-streams-")))
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        gw = GatewayProcess(
            policy,
            env={"MOCK_UPSTREAM_URL": mock.url},
            workers=workers,
            log_path=log_path,
            startup_timeout_s=120,
        )
        yield stack.enter_context(gw).url
