"""Classifier speed: batch-1 latency and batched throughput.

Run ``python -m router.lab.benchmark``.

Latency: one 256-token prompt at a time through the whole serving path (``classify`` → batcher
→ encoder → features → head), p50/p99 over ``--requests`` calls. Throughput: ``--concurrency``
requests in flight at once, so the micro-batcher groups them; prompts per second. Each runtime
and token budget given is measured in turn; ``--json`` prints machine-readable results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from router.classify.trained import Scorer, TrainedClassifier, prompt_from_request
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest

WORDS = (
    "the", "gateway", "routes", "each", "request", "to", "a", "local", "or", "hosted", "model",
    "by", "its", "complexity", "and", "records", "decision", "with", "cost", "so", "that",
    "finance", "can", "compare", "both", "options",
)  # fmt: skip


def prompt_of_tokens(n_words: int, seed: int = 0) -> str:
    """An English-like prompt of about ``n_words`` WordPiece tokens (one per common word)."""
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS, size=n_words))


@dataclass(frozen=True, slots=True)
class Result:
    """One configuration's numbers."""

    runtime: str
    encoder: str
    max_tokens: int
    prompt_tokens: int
    p50_ms: float
    p99_ms: float
    throughput_prompts_per_s: float
    concurrency: int
    largest_batch: int


def _request(text: str) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": text}]}
    )


async def measure(
    settings: ClassifierSettings, prompt_tokens: int, requests: int, concurrency: int
) -> Result:
    """Latency and throughput of one configuration."""
    clf = TrainedClassifier(Scorer.load(settings), settings.max_batch, settings.max_wait_ms / 1e3)
    try:
        req = _request(prompt_of_tokens(prompt_tokens))
        seq_tokens = len(clf.scorer.encoder.token_ids([prompt_from_request(req)])[0][0])
        for _ in range(10):
            await clf.classify(req)
        lat = []
        for _ in range(requests):
            t0 = time.perf_counter()
            await clf.classify(req)
            lat.append(time.perf_counter() - t0)
        reqs = [_request(prompt_of_tokens(prompt_tokens, seed=i)) for i in range(concurrency)]
        await asyncio.gather(*(clf.classify(r) for r in reqs[: settings.max_batch]))
        rounds = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 3.0 or rounds < 2:
            await asyncio.gather(*(clf.classify(r) for r in reqs))
            rounds += 1
        throughput = rounds * concurrency / (time.perf_counter() - t0)
        largest = clf.batcher.stats.largest
    finally:
        await clf.aclose()
    arr = np.asarray(lat) * 1e3
    return Result(
        runtime=settings.runtime,
        encoder=clf.scorer.encoder.name,
        max_tokens=seq_tokens,
        prompt_tokens=prompt_tokens,
        p50_ms=round(float(np.percentile(arr, 50)), 2),
        p99_ms=round(float(np.percentile(arr, 99)), 2),
        throughput_prompts_per_s=round(throughput, 1),
        concurrency=concurrency,
        largest_batch=largest,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark grid and print one line (or JSON object) per configuration."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--encoder-dir", help="encoder directory (default: the packaged MiniLM)")
    p.add_argument("--runtimes", nargs="+", default=["onnx", "torch"])
    p.add_argument("--max-tokens", type=int, nargs="+", default=[64])
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--max-wait-ms", type=float, default=1.0)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for runtime in args.runtimes:
        for budget in args.max_tokens:
            settings = ClassifierSettings(
                device=args.device,
                encoder_dir=args.encoder_dir,
                runtime=runtime,
                max_tokens=budget,
                max_batch=args.max_batch,
                max_wait_ms=args.max_wait_ms,
                threads=args.threads,
            )
            r = asyncio.run(measure(settings, args.prompt_tokens, args.requests, args.concurrency))
            if args.json:
                print(json.dumps(asdict(r)), flush=True)
            else:
                print(
                    f"{r.encoder:34s} prompt {r.prompt_tokens} tok (encoded {r.max_tokens}): "
                    f"p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  "
                    f"{r.throughput_prompts_per_s:.0f} prompts/s at concurrency {r.concurrency} "
                    f"(largest batch {r.largest_batch})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
