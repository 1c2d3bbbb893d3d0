"""Open-loop (fixed rate) and closed-loop (fixed concurrency) load phases over aiohttp.

Every request carries a prompt that is unique in the whole run, so that a gateway's response
cache never turns a benchmark request into a hit: the cache lookup (and store) are paid, the
upstream call is never skipped. Latency is in seconds internally and milliseconds in results.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import orjson
from gateway_targets import Target, Usage

WARMUP_REQUESTS = 20
SAMPLE_EVERY_S = 1.0
REQUEST_TIMEOUT_S = 30.0


class Prompts:
    """Request bodies with a unique user message each (a run id plus a counter)."""

    def __init__(self, model: str = "mock-local") -> None:
        self.model = model
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count()

    def next_body(self) -> bytes:
        """The next request body (JSON bytes)."""
        n = next(self._counter)
        return orjson.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "max_tokens": 32,
                "messages": [
                    {"role": "user", "content": f"Say hello in one word. (run {self._run}, #{n})"}
                ],
            }
        )


@dataclass
class PhaseResult:
    """One phase against one target. Latencies in ms; CPU in ms per successful request."""

    target: str
    mode: str
    """``open`` (fixed rate) or ``closed`` (fixed concurrency)."""
    offered_rps: float | None
    concurrency: int | None
    requests: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    """Largest resident memory seen during the phase, per process tree role, in MiB."""
    cpu_ms_per_req: dict[str, float] = field(default_factory=dict)
    """CPU time (user + system) per successful request, per process tree role, in ms."""
    round: int = 0
    """Which repetition of the phase this is (closed loops run ``--rounds`` times)."""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class _Recorder:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.peak_rss: dict[str, int] = {}
        self.start_usage: dict[str, Usage] = {}
        self.end_usage: dict[str, Usage] = {}

    def sample(self, first: bool = False) -> None:
        for role, tree in self.target.trees.items():
            usage = tree.sample()
            self.peak_rss[role] = max(self.peak_rss.get(role, 0), usage.rss_bytes)
            if first:
                self.start_usage[role] = usage
            self.end_usage[role] = usage

    async def sampler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)

    def result(
        self,
        mode: str,
        seconds: float,
        offered_rps: float | None = None,
        concurrency: int | None = None,
    ) -> PhaseResult:
        ms = [x * 1000 for x in self.latencies]
        ok = len(ms)
        n_err = sum(self.errors.values())
        cpu = {
            role: round(
                (self.end_usage[role].cpu_s - self.start_usage[role].cpu_s) * 1000 / max(ok, 1), 3
            )
            for role in self.start_usage
        }
        return PhaseResult(
            target=self.target.name,
            mode=mode,
            offered_rps=offered_rps,
            concurrency=concurrency,
            requests=ok + n_err,
            ok=ok,
            errors=n_err,
            error_kinds=dict(self.errors),
            seconds=round(seconds, 3),
            rps=round(ok / seconds, 1) if seconds > 0 else 0.0,
            p50_ms=round(percentile(ms, 0.50), 3),
            p90_ms=round(percentile(ms, 0.90), 3),
            p99_ms=round(percentile(ms, 0.99), 3),
            peak_rss_mb={k: round(v / 2**20, 1) for k, v in self.peak_rss.items()},
            cpu_ms_per_req=cpu,
        )


async def _send(session: aiohttp.ClientSession, target: Target, body: bytes) -> str | None:
    """POST one request; None when it succeeded, else a short error kind."""
    try:
        async with session.post(target.url, data=body, headers=target.headers) as r:
            await r.read()
            return None if r.status == 200 else f"http {r.status}"
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        headers={"content-type": "application/json"},
    )


async def _warm(session: aiohttp.ClientSession, target: Target, prompts: Prompts) -> None:
    for _ in range(WARMUP_REQUESTS):
        err = await _send(session, target, prompts.next_body())
        if err is not None:
            raise RuntimeError(f"{target.name}: warm-up request failed: {err}")


async def open_loop(
    target: Target, prompts: Prompts, rate: float, duration_s: float
) -> PhaseResult:
    """``rate`` requests/s for ``duration_s`` seconds, whatever the answers' pace (open loop).

    Latency counts from each request's scheduled start, so queueing in the client counts too.
    """
    rec = _Recorder(target)
    async with _session() as session:
        await _warm(session, target, prompts)

        async def fire(at: float, body: bytes) -> None:
            err = await _send(session, target, body)
            if err is None:
                rec.latencies.append(time.perf_counter() - at)
            else:
                rec.errors[err] += 1

        stop = asyncio.Event()
        rec.sample(first=True)
        sampler = asyncio.create_task(rec.sampler(stop))
        tasks = []
        t0 = time.perf_counter()
        for i in range(int(rate * duration_s)):
            at = t0 + i / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(fire(at, prompts.next_body())))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - t0
        stop.set()
        await sampler
        rec.sample()
    return rec.result("open", seconds, offered_rps=rate)


async def closed_loop(
    target: Target, prompts: Prompts, concurrency: int, duration_s: float
) -> PhaseResult:
    """``concurrency`` clients each send back-to-back requests for ``duration_s`` seconds."""
    rec = _Recorder(target)
    async with _session() as session:
        await _warm(session, target, prompts)
        deadline = time.perf_counter() + duration_s

        async def client() -> None:
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                err = await _send(session, target, prompts.next_body())
                if err is None:
                    rec.latencies.append(time.perf_counter() - t)
                else:
                    rec.errors[err] += 1

        stop = asyncio.Event()
        rec.sample(first=True)
        sampler = asyncio.create_task(rec.sampler(stop))
        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
        stop.set()
        await sampler
        rec.sample()
    return rec.result("closed", seconds, concurrency=concurrency)
