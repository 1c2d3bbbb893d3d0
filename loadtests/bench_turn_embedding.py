"""Benchmark: the semantic cache's extra whole-turn encoder pass, against the classifier's own.

For prompts of ``--tokens`` word pieces (cut from ``--data`` prompts, default the long pair
set's texts), it times, one request after another through the serving objects (the int8 ONNX
encoder in :class:`~router.classify.trained.TrainedClassifier`'s worker threads):

* ``classify``: the classifier's 48-token pass (what every scored request pays);
* ``embed_turn``: the extra pass over the whole turn (what a prompt longer than the classifier's
  budget pays when the semantic cache is on for it).

and prints p50 / p90 / mean in milliseconds. Run it on a quiet machine::

    python loadtests/bench_turn_embedding.py --tokens 64 150 256 300 --repeat 40
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

import orjson

from router.classify.factory import build_classifier
from router.classify.trained import TrainedClassifier
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest

DATA = Path(__file__).parents[1] / "tests" / "data" / "cache_pairs_long.jsonl"


def _req(text: str) -> ChatRequest:
    return ChatRequest.model_validate(
        {"model": "auto", "messages": [{"role": "user", "content": text}]}
    )


def _texts(clf: TrainedClassifier, n_tokens: int, count: int) -> list[str]:
    """``count`` different texts of exactly ``n_tokens`` word pieces."""
    tok = clf.scorer.encoder._tok
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    base = " ".join(str(r["a"]) for r in rows)
    ids = tok.encode(base, add_special_tokens=False).ids
    out = []
    for i in range(count):
        chunk = ids[i * 7 : i * 7 + n_tokens]
        out.append(tok.decode(chunk))
    return out


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    p50 = statistics.median(xs)
    p90 = xs[int(0.9 * (len(xs) - 1))]
    return f"p50 {1000 * p50:6.1f}  p90 {1000 * p90:6.1f}  mean {1000 * statistics.mean(xs):6.1f}"


async def _run(tokens: list[int], repeat: int) -> None:
    clf = build_classifier(ClassifierSettings(device="cpu"))
    assert isinstance(clf, TrainedClassifier), "the trained classifier did not load"
    print(f"encoder {clf.scorer.encoder.name}, turn cap {clf.turn_max_tokens} tokens")
    try:
        for n in tokens:
            texts = _texts(clf, n, repeat)
            await clf.classify(_req(texts[0]))  # warm-up
            await clf.embed_turn(_req(texts[0]))
            cls_s, turn_s = [], []
            for text in texts:
                t0 = time.perf_counter()
                await clf.classify(_req(text))
                t1 = time.perf_counter()
                vec = await clf.embed_turn(_req(text))
                t2 = time.perf_counter()
                assert vec is not None or n > clf.turn_max_tokens - 2
                cls_s.append(t1 - t0)
                turn_s.append(t2 - t1)
            print(f"{n:4d} tokens  classify    {_ms(cls_s)}")
            print(f"{n:4d} tokens  embed_turn  {_ms(turn_s)}")
    finally:
        await clf.aclose()


def main() -> None:
    """Parse the arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, nargs="+", default=[64, 150, 256, 300])
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    asyncio.run(_run(args.tokens, args.repeat))


if __name__ == "__main__":
    main()
